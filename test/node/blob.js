#!/usr/bin/env node
// Test and benchmark helper around the Azure Storage Blob SDK, for Azurite's well-known development
// account.  Used by test/fetch-*.t and test/bench/fetch.sh to make containers and blobs, SAS URLs, and
// as the JS SDK peer of the benchmark.  HTTPS endpoints need NODE_EXTRA_CA_CERTS=<test CA>.
//
//   blob.js container ENDPOINT NAME [public]        create a container (public: anonymous blob reads)
//   blob.js put-page ENDPOINT CONTAINER BLOB FILE    page blob of FILE's size (a multiple of 512);
//                                                    only the 512-byte pages that are not all zero
//                                                    are written, so holes in FILE stay unwritten
//   blob.js put-block ENDPOINT CONTAINER BLOB FILE   block blob with FILE's bytes
//   blob.js put-page-at ENDPOINT CONTAINER BLOB OFFSET FILE   one Put Page of FILE at OFFSET
//   blob.js sas ENDPOINT CONTAINER [BLOB]            a read SAS URL (container SAS: read+list), 2 h
//   blob.js sas-write ENDPOINT CONTAINER BLOB [PERMS] a blob SAS URL for uploading (default rcw:
//                                                    read, create, write), 2 h
//   blob.js sas-container-write ENDPOINT CONTAINER   a container SAS URL with read, add, create,
//                                                    write, delete and list (rclone uploads), 2 h
//   blob.js pagelist ENDPOINT CONTAINER BLOB         the blob's valid page ranges, "START-END" a line
//   blob.js props ENDPOINT CONTAINER BLOB            its properties as JSON: type, size, lease state
//   blob.js lease ENDPOINT CONTAINER BLOB acquire SECONDS   take a lease (-1: infinite); prints its id
//   blob.js lease ENDPOINT CONTAINER BLOB release ID        release it
//   blob.js lease ENDPOINT CONTAINER BLOB break             break whatever lease it has, at once
//   blob.js download URL FILE [file|buffer]          JS SDK download: downloadToFile (one stream), or
//                                                    downloadToBuffer with concurrency 8, then written
//
// ENDPOINT is the account URL, e.g. http://127.0.0.1:10000/devstoreaccount1.
"use strict";
const fs = require("fs");
const {
	BlobServiceClient,
	BlobClient,
	StorageSharedKeyCredential,
	generateBlobSASQueryParameters,
	BlobSASPermissions,
	ContainerSASPermissions,
} = require("@azure/storage-blob");

// Azurite's documented development account (public, not a secret).
const ACCOUNT = "devstoreaccount1";
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const cred = new StorageSharedKeyCredential(ACCOUNT, KEY);
const PAGE = 512;
const MAX_PUT = 4 << 20;

function service(endpoint) {
	return new BlobServiceClient(endpoint, cred);
}

const ZERO_PAGE = Buffer.alloc(PAGE);
function allZero(buf, start, end) {
	return buf.compare(ZERO_PAGE, 0, end - start, start, end) === 0;
}

// Runs the async functions of jobs with at most n at a time.
async function pool(n, jobs) {
	let next = 0;
	async function worker() {
		while (next < jobs.length) await jobs[next++]();
	}
	await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, worker));
}

async function putPage(endpoint, container, name, file) {
	const size = fs.statSync(file).size;
	if (size % PAGE) throw new Error(`${file}: size ${size} is not a multiple of ${PAGE}`);
	const blob = service(endpoint).getContainerClient(container).getPageBlobClient(name);
	await blob.create(size);
	const fd = fs.openSync(file, "r");
	const jobs = [];
	const chunk = Buffer.alloc(MAX_PUT);
	// find runs of non-zero pages, each at most MAX_PUT long
	for (let off = 0; off < size; off += MAX_PUT) {
		const n = fs.readSync(fd, chunk, 0, Math.min(MAX_PUT, size - off), off);
		let run = -1;
		for (let p = 0; p <= n; p += PAGE) {
			const data = p < n && !allZero(chunk, p, p + PAGE);
			if (data && run < 0) run = p;
			if (!data && run >= 0) {
				const body = Buffer.from(chunk.subarray(run, p));
				const at = off + run;
				jobs.push(() => blob.uploadPages(body, at, body.length));
				run = -1;
			}
		}
	}
	fs.closeSync(fd);
	await pool(8, jobs);
	process.stdout.write(`${jobs.length}\n`);
}

async function putPageAt(endpoint, container, name, offset, file) {
	const body = fs.readFileSync(file);
	const blob = service(endpoint).getContainerClient(container).getPageBlobClient(name);
	await blob.uploadPages(body, Number(offset), body.length);
}

async function putBlock(endpoint, container, name, file) {
	const blob = service(endpoint).getContainerClient(container).getBlockBlobClient(name);
	await blob.uploadFile(file, { blockSize: 4 << 20, concurrency: 8 });
}

function sas(endpoint, container, name) {
	const expiresOn = new Date(Date.now() + 2 * 3600 * 1000);
	const startsOn = new Date(Date.now() - 5 * 60 * 1000);
	const base = `${endpoint}/${container}` + (name ? `/${name}` : "");
	const q = name
		? generateBlobSASQueryParameters({ containerName: container, blobName: name,
			permissions: BlobSASPermissions.parse("r"), startsOn, expiresOn }, cred)
		: generateBlobSASQueryParameters({ containerName: container,
			permissions: ContainerSASPermissions.parse("rl"), startsOn, expiresOn }, cred);
	process.stdout.write(`${base}?${q.toString()}\n`);
}

function sasWrite(endpoint, container, name, perms) {
	const expiresOn = new Date(Date.now() + 2 * 3600 * 1000);
	const startsOn = new Date(Date.now() - 5 * 60 * 1000);
	const q = generateBlobSASQueryParameters({ containerName: container, blobName: name,
		permissions: BlobSASPermissions.parse(perms || "rcw"), startsOn, expiresOn }, cred);
	process.stdout.write(`${endpoint}/${container}/${name}?${q.toString()}\n`);
}

function sasContainerWrite(endpoint, container) {
	const expiresOn = new Date(Date.now() + 2 * 3600 * 1000);
	const startsOn = new Date(Date.now() - 5 * 60 * 1000);
	const q = generateBlobSASQueryParameters({ containerName: container,
		permissions: ContainerSASPermissions.parse("racwdl"), startsOn, expiresOn }, cred);
	process.stdout.write(`${endpoint}/${container}?${q.toString()}\n`);
}

function blobClient(endpoint, container, name) {
	return service(endpoint).getContainerClient(container).getPageBlobClient(name);
}

async function pagelist(endpoint, container, name) {
	const blob = blobClient(endpoint, container, name);
	const props = await blob.getProperties();
	let out = "";
	if (props.contentLength === 0) return;
	for await (const page of blob.listPageRanges(0, props.contentLength).byPage()) {
		for (const r of page.pageRange || []) out += `${r.start}-${r.end}\n`;
	}
	process.stdout.write(out);
}

async function props(endpoint, container, name) {
	const p = await blobClient(endpoint, container, name).getProperties();
	process.stdout.write(JSON.stringify({ type: p.blobType, size: p.contentLength, etag: p.etag,
		leaseState: p.leaseState, leaseStatus: p.leaseStatus, leaseDuration: p.leaseDuration || "" }) + "\n");
}

async function lease(endpoint, container, name, action, arg) {
	const blob = blobClient(endpoint, container, name);
	if (action === "acquire") {
		const r = await blob.getBlobLeaseClient().acquireLease(Number(arg));
		process.stdout.write(`${r.leaseId}\n`);
	} else if (action === "break") {
		await blob.getBlobLeaseClient().breakLease(0);
	} else {
		await blob.getBlobLeaseClient(arg).releaseLease();
	}
}

async function download(url, file, how) {
	const blob = new BlobClient(url);
	if (how === "buffer") {
		const props = await blob.getProperties();
		const buf = Buffer.alloc(props.contentLength);
		await blob.downloadToBuffer(buf, 0, props.contentLength, { concurrency: 8, blockSize: 4 << 20 });
		fs.writeFileSync(file, buf);
	} else {
		await blob.downloadToFile(file);
	}
}

async function main(argv) {
	const [cmd, ...a] = argv;
	switch (cmd) {
	case "container":
		await service(a[0]).getContainerClient(a[1]).create(a[2] === "public" ? { access: "blob" } : {});
		return;
	case "put-page":
		return putPage(a[0], a[1], a[2], a[3]);
	case "put-page-at":
		return putPageAt(a[0], a[1], a[2], a[3], a[4]);
	case "put-block":
		return putBlock(a[0], a[1], a[2], a[3]);
	case "sas":
		return sas(a[0], a[1], a[2]);
	case "download":
		return download(a[0], a[1], a[2] || "file");
	case "sas-write":
		return sasWrite(a[0], a[1], a[2], a[3]);
	case "sas-container-write":
		return sasContainerWrite(a[0], a[1]);
	case "pagelist":
		return pagelist(a[0], a[1], a[2]);
	case "props":
		return props(a[0], a[1], a[2]);
	case "lease":
		return lease(a[0], a[1], a[2], a[3], a[4]);
	default:
		throw new Error("usage: blob.js container|put-page|put-page-at|put-block|sas|sas-write|sas-container-write|download|" +
			"pagelist|props|lease ...");
	}
}

main(process.argv.slice(2)).catch((e) => {
	process.stderr.write(`blob.js: ${e.message || e}\n`);
	process.exit(1);
});
