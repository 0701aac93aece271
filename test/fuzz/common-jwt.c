/* libFuzzer target: what kind of pipeline data a text is, compact JWT decoding and the pretty
 * printer, on arbitrary bytes (the show commands and the wrong-input messages read any input). */
#include "jwt.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data_kind_says(data_kind((const char *)data, size));
	struct jwt t;
	if (jwt_decode((const char *)data, size, &t, NULL) != 0)
		return 0;
	long long exp, nbf, iat;
	char when[64];
	jwt_times(&t, &exp, &nbf, &iat);
	jwt_format_time(exp, when, sizeof when);
	jwt_format_span(exp - iat, when, sizeof when);
	struct strbuf out = {0};
	json_pretty(&t.h, 0, 0, NULL, NULL, &out);
	json_pretty(&t.p, 0, 1, NULL, NULL, &out);
	sb_free(&out);
	jwt_free(&t);
	return 0;
}
