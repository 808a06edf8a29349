package s3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap/zaptest"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// countingConn counts the writes on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countingClient counts the requests it sends.
type countingClient struct {
	next     awss3.HTTPClient
	requests atomic.Int64
}

func (c *countingClient) Do(req *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	return c.next.Do(req)
}

// TestSink_SmallBodyOneWrite: a small body held in memory leaves with its
// request's headers in one write on the connection (membody.go), and the
// store holds exactly its bytes. Fails when the transport gets the SDK's
// wrapper of the body (it then flushes the headers first: two writes).
func TestSink_SmallBodyOneWrite(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t, false)
	s, err := New(ctx, Options{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	bc, ok := s.files.next.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("the S3 client's HTTP client is a %T, want an *awshttp.BuildableClient", s.files.next)
	}
	var writes atomic.Int64
	counted := &countingClient{next: bc.WithTransportOptions(func(tr *http.Transport) {
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: c, writes: &writes}, nil
		}
	})}
	s.files.next = counted
	for _, size := range []int{8 << 10, 12 << 10} {
		body := make([]byte, size)
		rand.Read(body)
		sum := sha256.Sum256(body)
		w0, r0, m0 := writes.Load(), counted.requests.Load(), s.files.mem.Load()
		key := "t/small-" + strings.Repeat("x", size>>12)
		if _, err := s.Put(ctx, key, bytes.NewReader(body), int64(size), sink.Meta{SHA256: hex.EncodeToString(sum[:])}); err != nil {
			t.Fatalf("Put of %d bytes: %v", size, err)
		}
		w, r, m := writes.Load()-w0, counted.requests.Load()-r0, s.files.mem.Load()-m0
		if m != 1 {
			t.Errorf("%d bytes: %d bodies sent from memory, want 1", size, m)
		}
		if w != r {
			t.Errorf("%d bytes: %d writes for %d requests, want one each", size, w, r)
		}
		out, err := srv.Client().GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(key))})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: stored %d bytes (%v), want the body", size, len(got), err)
		}
	}
}

// TestMemBody_HeldWhileWriting: a request whose answer comes back before
// its body was written (the server answers at once and reads nothing)
// returns with its buffer held, which the pool then drops; one whose body
// was all written leaves its buffer free for reuse. Fails when do does not
// trace the write (a pooled buffer would be reused under a running write).
func TestMemBody_HeldWhileWriting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				if req.URL.Path == "/early" {
					// Answer before reading the body, and keep the
					// connection open a while, reading nothing. The
					// answer has a body: the client's transport keeps
					// the connection until it is read, so the write is
					// still blocked when the request returns.
					io.WriteString(c, "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 5\r\n\r\nearly")
					time.Sleep(500 * time.Millisecond)
					return
				}
				// Read the body, answer, and keep the connection: the
				// client's transport then waits for its write to end
				// before it returns the answer (to reuse the connection).
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				io.Copy(io.Discard, r)
			}(c)
		}
	}()
	for _, tc := range []struct {
		path string
		size int
		held bool
	}{
		{"/read", 1 << 20, false},
		// More than the loopback socket buffers take: the write blocks.
		{"/early", 64 << 20, true},
	} {
		b := newBudget(int64(tc.size))
		if err := b.acquire(context.Background(), int64(tc.size)); err != nil {
			t.Fatal(err)
		}
		buf := &buffer{b: make([]byte, tc.size), cap: int64(tc.size), cost: int64(tc.size), from: b}
		mb := withBody(context.Background(), buf).Value(memBodyKey{}).(*memBody)
		req, err := http.NewRequest(http.MethodPut, "http://"+ln.Addr().String()+tc.path, http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(tc.size)
		tr := &http.Transport{WriteBufferSize: writeBufferSize}
		defer tr.CloseIdleConnections()
		resp, err := mb.do(&http.Client{Transport: tr}, req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		resp.Body.Close()
		if buf.held != tc.held {
			t.Errorf("%s (%d bytes, answered %s): held = %v, want %v", tc.path, tc.size, resp.Status, buf.held, tc.held)
		}
		p := newBufPool(newBudget(1<<30), 8<<20)
		p.put(buf)
		if used := b.inUse(); used != 0 {
			t.Errorf("%s: %d bytes of the budget still in use after put", tc.path, used)
		}
	}
}
