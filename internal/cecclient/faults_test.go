package cecclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

const recName = "/10/1/record/100/20260301/13533/0903379.wav"

// hijackWrite sends a 200 with the given Content-Length and only part of the
// body, then ends the connection: with a reset (RST) or a clean close (FIN).
func hijackWrite(t *testing.T, w http.ResponseWriter, contentLength int, part []byte, reset bool) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: " + cecwire.ContentTypeOctetStream +
		"\r\nContent-Length: " + strconv.Itoa(contentLength) + "\r\n\r\n")
	buf.Write(part)
	buf.Flush()
	time.Sleep(50 * time.Millisecond)
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	conn.Close()
}

func readAll(t *testing.T, d *Download) ([]byte, error) {
	t.Helper()
	defer d.Body.Close()
	return io.ReadAll(d.Body)
}

func TestClient_DownloadFaults(t *testing.T) {
	wav := wavBytes(20000)
	ctx := context.Background()

	t.Run("connection reset mid-body", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			hijackWrite(t, w, len(wav), wav[:4096], true)
		}})
		d, err := newTestClient(t, ts.URL).DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatalf("the first bytes arrived, the download should start: %v", err)
		}
		_, err = readAll(t, d)
		if err == nil || !IsTransient(err) {
			t.Fatalf("Read err = %v (%v)", err, Classify(err))
		}
	})
	t.Run("truncated body is never a success", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			hijackWrite(t, w, len(wav), wav[:len(wav)/2], false)
		}})
		d, err := newTestClient(t, ts.URL).DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, d)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !IsTransient(err) {
			t.Fatalf("Read err = %v after %d bytes", err, len(got))
		}
		if n := ts.hitCount(cecwire.PathDownloadRecordFile); n != 1 {
			t.Errorf("%d attempts: nothing may be retried after the body was handed out", n)
		}
	})
	t.Run("truncated before the first bytes is retried", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			if hit == 1 {
				hijackWrite(t, w, len(wav), wav[:100], false)
				return
			}
			writeFile(w, "", wav)
		}})
		d, err := newTestClient(t, ts.URL).DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, d); err != nil || len(got) != len(wav) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		if n := ts.hitCount(cecwire.PathDownloadRecordFile); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
	t.Run("stalled body", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
			w.Header().Set("Content-Length", strconv.Itoa(len(wav)))
			w.Write(wav[:2048])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}})
		c := newTestClient(t, ts.URL, func(o *Options) { o.StallTimeout = 200 * time.Millisecond })
		d, err := c.DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = readAll(t, d)
		if !errors.Is(err, ErrStalled) || !IsTransient(err) {
			t.Fatalf("Read err = %v", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("stall detected after %v", el)
		}
	})
	t.Run("slow consumer is not a stall", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeFile(w, "", wav)
		}})
		c := newTestClient(t, ts.URL, func(o *Options) { o.StallTimeout = 100 * time.Millisecond })
		d, err := c.DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Body.Close()
		buf := make([]byte, 8192)
		n := 0
		for {
			k, err := d.Body.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read after %d bytes: %v", n, err)
			}
			time.Sleep(150 * time.Millisecond) // the sink is slower than the stall timeout
		}
		if n != len(wav) {
			t.Errorf("%d bytes, want %d", n, len(wav))
		}
	})
	t.Run("empty body is retried, then transient", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeFile(w, "", nil)
		}})
		_, err := newTestClient(t, ts.URL, func(o *Options) { o.MaxAttempts = 2 }).DownloadRecordFile(ctx, recName)
		if !errors.Is(err, ErrEmptyBody) || !IsTransient(err) || ts.hitCount(cecwire.PathDownloadRecordFile) != 2 {
			t.Fatalf("err = %v after %d attempts", err, ts.hitCount(cecwire.PathDownloadRecordFile))
		}
	})
	t.Run("HTML page with 200", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!DOCTYPE html><html><body>Access denied</body></html>"))
		}})
		_, err := newTestClient(t, ts.URL, func(o *Options) { o.MaxAttempts = 1 }).DownloadRecordFile(ctx, recName)
		if !errors.Is(err, ErrUnexpectedContent) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("JSON answer without resultCode", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"error": "x"})
		}})
		_, err := newTestClient(t, ts.URL).DownloadRecordFile(ctx, recName)
		if !IsPermanent(err) || ts.hitCount(cecwire.PathDownloadRecordFile) != 1 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("oversized JSON answer", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
			w.Write([]byte(`{"resultCode":"0","resultDesc":"` + strings.Repeat("x", 5000) + `"}`))
		}})
		c := newTestClient(t, ts.URL, func(o *Options) { o.MaxJSONBytes = 4096 })
		_, err := c.QueryBillData(ctx, BillQuery{Begin: time.Now().Add(-time.Hour), End: time.Now(), CallBackURL: "https://cb.example/"})
		if !errors.Is(err, ErrTooLarge) || !IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("WAV labelled JSON is a file", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
			w.Write(wav)
		}})
		d, err := newTestClient(t, ts.URL).DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, d); err != nil || len(got) != len(wav) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("no retry once the context is done", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			cancel()
			w.WriteHeader(http.StatusInternalServerError)
		}})
		_, err := newTestClient(t, ts.URL).DownloadRecordFile(cctx, recName)
		if err == nil || ts.hitCount(cecwire.PathDownloadRecordFile) != 1 {
			t.Fatalf("err = %v after %d attempts", err, ts.hitCount(cecwire.PathDownloadRecordFile))
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
		}})
		_, err := newTestClient(t, ts.URL).DownloadRecordFile(ctx, recName)
		var ae *APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusFound || !IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestClient_RetryAfter: a 429's Retry-After, in both forms, holds back
// every request of the client until it has passed.
func TestClient_RetryAfter(t *testing.T) {
	ctx := context.Background()
	for _, form := range []string{"seconds", "http-date"} {
		t.Run(form, func(t *testing.T) {
			var mu sync.Mutex
			var until time.Time
			var otherAt time.Time
			throttled := make(chan struct{})
			ts := newTestServer(t, map[string]handlerFunc{
				cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					if hit == 1 {
						mu.Lock()
						if form == "seconds" {
							until = time.Now().Add(time.Second)
							w.Header().Set("Retry-After", "1")
						} else {
							until = time.Now().Add(2 * time.Second).Truncate(time.Second)
							w.Header().Set("Retry-After", until.UTC().Format(http.TimeFormat))
						}
						mu.Unlock()
						w.WriteHeader(http.StatusTooManyRequests)
						close(throttled)
						return
					}
					writeFile(w, "", wavBytes(10))
				},
				cecwire.PathDownloadBillFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					mu.Lock()
					otherAt = time.Now()
					mu.Unlock()
					writeFile(w, "", []byte("PK\x03\x04zip"))
				},
			})
			c := newTestClient(t, ts.URL)
			var wg sync.WaitGroup
			wg.Go(func() {
				<-throttled
				time.Sleep(50 * time.Millisecond)
				d, err := c.DownloadBillFile(ctx, "20260301_abc.zip")
				if err != nil {
					t.Errorf("other request: %v", err)
					return
				}
				d.Body.Close()
			})
			d, err := c.DownloadRecordFile(ctx, recName)
			if err != nil {
				t.Fatal(err)
			}
			d.Body.Close()
			wg.Wait()
			if c.RateLimit() >= 1000 {
				t.Errorf("RateLimit %v after a 429, want < 1000", c.RateLimit())
			}
			mu.Lock()
			defer mu.Unlock()
			const slack = 20 * time.Millisecond // clock and timer granularity
			if otherAt.Before(until.Add(-slack)) {
				t.Errorf("another request went out %v before Retry-After ended", until.Sub(otherAt))
			}
			if n := ts.hitCount(cecwire.PathDownloadRecordFile); n != 2 {
				t.Errorf("%d attempts, want 2", n)
			}
		})
	}
	t.Run("capped by MaxRetryAfter", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			if hit == 1 {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			writeFile(w, "", wavBytes(10))
		}})
		c := newTestClient(t, ts.URL, func(o *Options) { o.MaxRetryAfter = 200 * time.Millisecond })
		start := time.Now()
		d, err := c.DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		d.Body.Close()
		if el := time.Since(start); el < 190*time.Millisecond || el > 3*time.Second {
			t.Errorf("took %v, want about 200ms", el)
		}
	})
	t.Run("deadline shorter than Retry-After", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		}})
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := newTestClient(t, ts.URL).DownloadRecordFile(dctx, recName)
		var ae *APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != 429 || ae.RetryAfter != 30*time.Second || !IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("waited %v although the deadline could not be met", time.Since(start))
		}
	})
}

// TestClient_RateLimitAdapts: flow control halves the shared rate; a run of
// successes brings it back to the configured rate.
func TestClient_RateLimitAdapts(t *testing.T) {
	ts := newTestServer(t, map[string]handlerFunc{cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
		if hit == 1 {
			writeResult(w, cecwire.CodeQueryFlowCtl, "query flow control")
			return
		}
		writeJSON(w, map[string]any{"resultCode": "0", "resultData": map[string]any{"responseId": "r" + strconv.Itoa(hit)}})
	}})
	c := newTestClient(t, ts.URL, func(o *Options) { o.RateLimit = 200; o.Burst = 1 })
	q := BillQuery{Begin: time.Now().Add(-time.Hour), End: time.Now(), CallBackURL: "https://cb.example/"}
	if _, err := c.QueryBillData(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if n := ts.hitCount(cecwire.PathQueryBillData); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	if r := c.RateLimit(); r != 100 {
		t.Fatalf("RateLimit after flow control = %v, want 100", r)
	}
	for i := 0; i < 2*recoverAfter; i++ {
		if _, err := c.QueryBillData(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if r := c.RateLimit(); r != 200 {
		t.Fatalf("RateLimit after %d successes = %v, want 200", 2*recoverAfter, r)
	}
}

// TestClient_ResponseHeaderTimeout: a server that never answers is a transient timeout.
func TestClient_ResponseHeaderTimeout(t *testing.T) {
	ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}})
	c := newTestClient(t, ts.URL, func(o *Options) { o.ResponseHeaderTimeout = 100 * time.Millisecond; o.MaxAttempts = 2 })
	_, err := c.DownloadRecordFile(context.Background(), recName)
	if !IsTransient(err) || ts.hitCount(cecwire.PathDownloadRecordFile) != 2 {
		t.Fatalf("err = %v after %d attempts", err, ts.hitCount(cecwire.PathDownloadRecordFile))
	}
}

// writeCountConn counts the writes on a connection.
type writeCountConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCountConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestTransport_OneWriteAnAPICall: a signed API call (headers and its small
// JSON body) leaves in one write, watched or not: a body wrapped in the
// stall watchdog made net/http flush the headers in a write of their own.
func TestTransport_OneWriteAnAPICall(t *testing.T) {
	ctx := context.Background()
	wav := wavBytes(2000)
	ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
		writeFile(w, "", wav)
	}})
	var writes atomic.Int64
	c := newTestClient(t, ts.URL)
	tr := c.signed.Transport.(*prepareRT).next.(*watchdogRT).next.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCountConn{Conn: conn, writes: &writes}, nil
	}
	for i := range 3 {
		d, err := c.DownloadRecordFile(ctx, recName)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, d); err != nil {
			t.Fatal(err)
		}
		if got := writes.Load(); got != int64(i+1) {
			t.Fatalf("%d calls took %d writes, want one each", i+1, got)
		}
	}
}
