/* libFuzzer target: the strict JSON parser and its getters on arbitrary bytes. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json j;
	struct err e;
	if (json_parse(&j, (const char *)data, size, 4096, &e) != 0)
		return 0;
	/* walk every token through every getter: none may read outside the text */
	for (int t = 0; t < j.ntok; t++) {
		char path[256];
		int64_t i;
		uint64_t u;
		bool b;
		json_path(&j, t, path, sizeof path);
		free(json_string(&j, t));
		(void)json_int64(&j, t, &i);
		(void)json_uint64(&j, t, &u);
		(void)json_bool(&j, t, &b);
		(void)json_skip(&j, t);
		int key, val;
		for (int m = 0; m < 4 && json_member_at(&j, t, m, &key, &val) == 0; m++)
			(void)json_member(&j, t, path);
		(void)json_get(&j, 0, path);
	}
	json_free(&j);
	return 0;
}
