package cecclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// newTransport builds the one tuned transport of a Client.
func newTransport(o *Options) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cec: CAFile: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cec: CAFile %s holds no PEM certificate", o.CAFile)
		}
	}
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            pool,
			ServerName:         o.ServerName,
			InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // only when configured, with a warning
		},
		TLSHandshakeTimeout:   o.TLSHandshakeTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          max(32, 3*o.MaxIdleConnsPerHost), // three services
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		ForceAttemptHTTP2:     true,
		// Recordings are sent as they are; transparent gzip would hide
		// Content-Length and with it the truncation check.
		DisableCompression: true,
	}, nil
}

// prepareRT sets the User-Agent header and, with a signer, signs every
// request it sends with a fresh timestamp (after the User-Agent, so that
// every header it may sign is in place): one clone of the request for
// both, the transports below it copying the request only shallowly.
type prepareRT struct {
	next   http.RoundTripper
	ua     string
	signer *Signer // nil: not signed
	now    func() time.Time
}

func (p *prepareRT) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if p.signer != nil && req.Body != nil && req.Body != http.NoBody {
		req.Body.Close() // the clone gets a fresh reader over the same bytes
		if req.GetBody == nil {
			return nil, errors.New("cec: sign: request body is not replayable")
		}
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		body, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", p.ua)
	if p.signer != nil {
		if err := p.signer.Sign(r, body, p.now()); err != nil {
			return nil, err
		}
	}
	return p.next.RoundTrip(r)
}

// watchdogRT cancels a transfer that makes no progress for timeout: while
// the request body is being sent (reset on every read of it) and while the
// caller waits inside Read of the response body. Time the caller spends
// between two Reads (a slow sink) does not count, and neither does the wait
// for the response headers (ResponseHeaderTimeout covers that).
type watchdogRT struct {
	next    http.RoundTripper
	timeout time.Duration
}

type watchdog struct {
	timeout time.Duration
	timer   *time.Timer
	fired   atomic.Bool
	headers atomic.Bool // the response headers have arrived
	cancel  context.CancelFunc
	once    sync.Once
}

func (w *watchdog) arm()    { w.timer.Reset(w.timeout) }
func (w *watchdog) disarm() { w.timer.Stop() }
func (w *watchdog) done() {
	w.once.Do(func() {
		w.timer.Stop()
		w.cancel()
	})
}

func (w *watchdog) stallErr(err error) error {
	if w.fired.Load() {
		return fmt.Errorf("%w: no progress for %s", ErrStalled, w.timeout)
	}
	return err
}

func (t *watchdogRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.timeout <= 0 {
		return t.next.RoundTrip(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{timeout: t.timeout, cancel: cancel}
	w.timer = time.AfterFunc(t.timeout, func() {
		w.fired.Store(true)
		cancel()
	})
	r := req.WithContext(ctx) // shallow: neither the headers nor the URL change
	if req.Body != nil && req.Body != http.NoBody && !smallInMemory(req) {
		r.Body = &reqBodyWatch{rc: req.Body, w: w}
	} else {
		w.disarm()
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		w.done()
		return nil, w.stallErr(err)
	}
	w.headers.Store(true)
	w.disarm()
	resp.Body = &respBodyWatch{rc: resp.Body, w: w}
	return resp, nil
}

// smallBody is the largest request body sent unwatched (smallInMemory): with
// the headers, well inside what a TCP connection takes before the peer reads.
const smallBody = 8 << 10

// smallInMemory reports whether req's body is a small one held in memory
// (an API call's JSON, all but an uploaded file): the transport writes it
// with the headers, without waiting on the peer, and wrapped it would hide
// its type from net/http, which then flushes the headers in a write of their
// own (two writes a request instead of one). Stalls before the answer are
// the dial, TLS and response-header timeouts' to catch.
func smallInMemory(req *http.Request) bool {
	return req.GetBody != nil && req.ContentLength > 0 && req.ContentLength <= smallBody
}

type reqBodyWatch struct {
	rc io.ReadCloser
	w  *watchdog
}

func (b *reqBodyWatch) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case b.w.headers.Load():
		// The server answered early; the response body's reads own the timer.
	case err == nil:
		b.w.arm()
	default:
		// The whole body is with the transport; waiting for the headers is
		// ResponseHeaderTimeout's job.
		b.w.disarm()
	}
	return n, err
}

func (b *reqBodyWatch) Close() error { return b.rc.Close() }

type respBodyWatch struct {
	rc io.ReadCloser
	w  *watchdog
}

func (b *respBodyWatch) Read(p []byte) (int, error) {
	b.w.arm()
	n, err := b.rc.Read(p)
	b.w.disarm()
	if err != nil && err != io.EOF {
		err = b.w.stallErr(err)
	}
	return n, err
}

func (b *respBodyWatch) Close() error {
	err := b.rc.Close()
	b.w.done()
	return err
}
