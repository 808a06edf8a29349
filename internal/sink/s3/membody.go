package s3

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Bodies sent from their memory buffer in one write with the headers.
//
// net/http flushes a request's headers in a write of their own unless the
// body is a reader it knows to be in memory, and then copies the body
// through a fresh buffer (8 KiB for an 8 KiB body): the SDK's wrapper hides
// that the body is a *bytes.Reader, so every small PutObject cost two
// writes and an allocation as large as its body (140 MB over 20,000
// recordings of 8 KiB). The sink marks a request's context with the memory
// buffer (withBody) and fileBodyClient hands the transport a *bytes.Reader of
// it in place of the SDK's body: with writeBufferSize, headers and a small
// body leave in one write.
//
// The transport may read a body after the response came back: a store that
// answers before it has read the whole body (412 to a conditional write, an
// error) leaves the write running while the SDK returns. The buffer is
// pooled, and the next body filled into it would then be read by that
// write (a data race, garbage on a connection being closed). So the client
// traces each attempt: a connection obtained starts a write that may read
// the buffer, WroteRequest ends it; a request that returns with a write not
// ended holds the buffer, which is then never reused (bufPool.put drops it).
// The writes are counted, not flagged: an attempt whose write never began
// (its connection failed first) keeps the count up and its buffer held,
// and a late end of one attempt's write cannot hide another's.

// writeBufferSize is the transport's write buffer: the headers of a
// PutObject (some 1.5 KiB with the metadata, tags and checksum) and a body
// of up to some 14 KiB leave in one write.
const writeBufferSize = 16 << 10

type memBodyKey struct{}

// memBody is a memory buffer holding a whole body, and whether the
// transport may still read it.
type memBody struct {
	buf     *buffer
	mu      sync.Mutex
	writing int           // connections obtained whose write has not ended
	ended   chan struct{} // a write ended (buffered: one is enough)
}

// settleWait is how long a request that came back with a write not ended
// waits for it before it holds its buffer: an answer that ends the
// connection (Connection: close) comes back while the write loop, its body
// sent, has yet to say so.
const settleWait = time.Millisecond

// withBody marks ctx with buf, which holds the body of the request made
// with it: a spool file is sent by the kernel (withFileBody), a memory
// buffer in one write with the headers.
func withBody(ctx context.Context, buf *buffer) context.Context {
	if buf.f != nil {
		return withFileBody(ctx, buf)
	}
	if len(buf.b) == 0 {
		return ctx
	}
	return context.WithValue(ctx, memBodyKey{}, &memBody{buf: buf, ended: make(chan struct{}, 1)})
}

// sendable reports whether req carries exactly the bytes of a body of n
// bytes, not re-encoded by the SDK (aws-chunked for a trailing checksum).
func sendable(req *http.Request, n int64) bool {
	return req.Method == http.MethodPut && req.ContentLength == n &&
		req.Header.Get("Content-Encoding") == "" && req.Header.Get("X-Amz-Decoded-Content-Length") == ""
}

// do sends req with mb's bytes as its body through next.
func (mb *memBody) do(next s3.HTTPClient, req *http.Request) (*http.Response, error) {
	b := mb.buf.b
	if req.Body != nil {
		req.Body.Close() // the SDK's wrapper of the same bytes, unread
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			mb.mu.Lock()
			mb.writing++
			mb.mu.Unlock()
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			mb.mu.Lock()
			mb.writing--
			mb.mu.Unlock()
			select {
			case mb.ended <- struct{}{}:
			default:
			}
		},
	}
	resp, err := next.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if !mb.settle() {
		mb.buf.held = true
	}
	return resp, err
}

// settle waits up to settleWait for every write of the request (of each
// attempt so far) to end, and reports whether they have.
func (mb *memBody) settle() bool {
	if mb.settled() {
		return true
	}
	wait := time.NewTimer(settleWait)
	defer wait.Stop()
	for {
		select {
		case <-mb.ended:
			if mb.settled() {
				return true
			}
		case <-wait.C:
			return mb.settled()
		}
	}
}

// settled reports whether every write of the request has ended.
func (mb *memBody) settled() bool {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.writing == 0
}
