package s3

import (
	"context"
	"io"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Bodies sent from their spool file by the kernel.
//
// A body above the memory threshold waits in a spool file; the SDK reads it
// through an io.SectionReader into user space and writes it to the socket
// (a pread and a write per 32 KiB: a quarter of the archiver's CPU on 10 MiB
// recordings). net/http sends a request body that is an *os.File with
// sendfile(2) instead, but the SDK wraps every body. So the sink marks a
// request's context with the spool file (withFileBody) and fileBodyClient,
// the S3 client's HTTP client, hands the transport the file opened again
// (Linux: /proc/self/fd), at its start, in place of the SDK's body: the same
// bytes, for a request whose length says it carries exactly them and that
// the SDK did not re-encode (aws-chunked for a trailing checksum). The store
// checks them whatever path they took (the checksum header, or the signed
// payload hash with checksum = "none").

type fileBodyKey struct{}

// fileBody is a spool file holding n bytes of a body, from offset 0.
type fileBody struct {
	f *os.File
	n int64
}

// withFileBody marks ctx with buf's spool file, if it has one that holds
// exactly the body: the transport sends a file to its end, and one reused
// from a larger body keeps that body's tail.
func withFileBody(ctx context.Context, buf *buffer) context.Context {
	if buf.f == nil || buf.n == 0 || buf.fsize > buf.n {
		return ctx
	}
	return context.WithValue(ctx, fileBodyKey{}, &fileBody{f: buf.f, n: buf.n})
}

// open returns the file opened again, at offset 0 (the transport
// closes it once the body is sent; the spool file stays open).
func (b *fileBody) open() (io.ReadCloser, error) {
	f, err := dupFile(b.f)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fileBodyClient is the S3 client's HTTP client: next, with spool files sent
// as they are, and memory buffers as *bytes.Reader (membody.go).
type fileBodyClient struct {
	next s3.HTTPClient
	sent atomic.Int64 // bodies sent from their file, for tests
	mem  atomic.Int64 // bodies sent from their memory buffer (membody.go), for tests
}

func (c *fileBodyClient) Do(req *http.Request) (*http.Response, error) {
	if mb, ok := req.Context().Value(memBodyKey{}).(*memBody); ok && sendable(req, int64(len(mb.buf.b))) {
		c.mem.Add(1)
		return mb.do(c.next, req)
	}
	fb, ok := req.Context().Value(fileBodyKey{}).(*fileBody)
	if !ok || !sendable(req, fb.n) || !canDup {
		return c.next.Do(req)
	}
	body, err := fb.open()
	if err != nil {
		return c.next.Do(req) // the SDK's own body, read through user space
	}
	if req.Body != nil {
		req.Body.Close() // the SDK's wrapper of the same bytes, unread
	}
	req.Body, req.GetBody = body, fb.open
	c.sent.Add(1)
	return c.next.Do(req)
}
