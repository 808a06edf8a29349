// Package cecclient is the client of the Huawei Cloud CEC interfaces that
// cec-archiver uses (shared/cec-api.md): CC-FS and CC-CMS with auth-v2
// signatures, OIFDE with a C3 token. One Client holds one tuned transport,
// one shared adaptive rate limiter and one token cache; every method is safe
// for concurrent use.
//
// Every error is classified once by Classify. Requests are retried inside the
// client only while they are Transient, with exponential backoff and full
// jitter, at most Options.MaxAttempts times, never after the context is done,
// and never once a download body has been handed to the caller. One more
// retry is made for an HTTP 401: a signed CC-FS/CC-CMS request is sent once
// more with a fresh signature, an OIFDE query once more with a fresh token
// (the same single refresh as for 900001); a second 401 is returned (IsAuth).
//
// What a server sends is bounded and checked before it is handed on: JSON
// answers by Options.MaxJSONBytes; recordings by Options.MaxRecordingBytes
// (by Content-Length before the body is read, else while it streams); every
// download body by the stall watchdog (Options.StallTimeout) and a minimum
// average rate (Options.MinRate over Options.MinRateWindow, reliability.md
// F8); an answer with a Content-Encoding other than identity, an HTML page in
// place of a file and an OIFDE total beyond Options.MaxPages pages are
// refused. Such refusals are content errors (IsContentError): Permanent, so
// the caller records a failure and tries again on a later run. Whether the
// bytes of a download are a recording is for the caller to check while it
// streams them (package recording).
package cecclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Defaults of Options.
const (
	DefaultRateLimit             = 10.0
	DefaultBurst                 = 1
	DefaultMaxAttempts           = 5
	DefaultBaseBackoff           = 500 * time.Millisecond
	DefaultMaxBackoff            = 30 * time.Second
	DefaultMaxRetryAfter         = 5 * time.Minute
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultStallTimeout          = 60 * time.Second
	DefaultMaxJSONBytes          = 16 << 20
	DefaultUploadMaxBytes        = 5 << 20
	DefaultUserAgent             = "cec-archiver"
	DefaultMaxRecordingBytes     = 2 << 30 // 2 GiB
	DefaultMinRate               = 1024    // bytes per second
	DefaultMinRateWindow         = 60 * time.Second
	DefaultMaxPages              = 50 // per OIFDE lookup
	DefaultMaxIdleConnsPerHost   = 8
)

// Options configure a Client. Zero values take the defaults above. Only the
// URLs of the services that are used need to be set.
type Options struct {
	FSURL    string // CC-FS base URL, e.g. https://10.0.0.1:28443
	CMSURL   string // CC-CMS base URL
	OIFDEURL string // OIFDE base URL

	AK, SK      string // auth-v2 credentials (CC-FS, CC-CMS)
	TenantID    string // OIFDE appKey / tenantId
	APIPassword string // OIFDE appSecret

	CAFile             string // extra PEM CA bundle, added to the system pool
	ServerName         string // TLS server-name override (certificate has only a DNS SAN)
	InsecureSkipVerify bool   // never in production; logged loudly

	SignedHeaders []string // default content-length, content-type, host; host is required

	RateLimit float64 // requests per second shared by the whole client, default 10
	Burst     int     // default 1
	// MaxIdleConnsPerHost is how many idle connections are kept to each
	// service, default 8. Set it to the requests the caller keeps in flight:
	// with fewer, every response beyond it closes its connection and the
	// next request dials again.
	MaxIdleConnsPerHost int
	MaxAttempts         int // per request, default 5

	BaseBackoff   time.Duration // default 500ms
	MaxBackoff    time.Duration // default 30s
	MaxRetryAfter time.Duration // cap on a server's Retry-After, default 5m

	DialTimeout           time.Duration // default 10s
	TLSHandshakeTimeout   time.Duration // default 10s
	ResponseHeaderTimeout time.Duration // default 60s
	StallTimeout          time.Duration // no progress while transferring a body, default 60s

	// MinRate is the lowest average rate, in bytes per second, a download
	// body may arrive at over any MinRateWindow of time spent waiting inside
	// Read (the caller's time between Reads does not count); slower bodies
	// are cancelled with ErrTooSlow. Default 1024; negative disables the check.
	MinRate       int64
	MinRateWindow time.Duration // default 60s

	MaxJSONBytes      int64 // bound on every JSON answer, default 16 MiB
	UploadMaxBytes    int64 // bound on an uploaded WAV, default 5 MiB
	MaxRecordingBytes int64 // bound on a recording download (not bill files), default 2 GiB
	MaxPages          int   // bound on the pages of one OIFDE lookup, default 50

	UserAgent string
	Logger    *zap.Logger
	// Observer, if not nil, is told about every HTTP attempt (see Observer).
	Observer Observer
	Now      func() time.Time // clock for signatures and token expiry; default time.Now
}

// String describes the options without any secret.
func (o Options) String() string {
	return fmt.Sprintf("cecclient.Options{FSURL:%q CMSURL:%q OIFDEURL:%q AK:<redacted> SK:<redacted> TenantID:%q APIPassword:<redacted>}",
		o.FSURL, o.CMSURL, o.OIFDEURL, o.TenantID)
}

// GoString describes the options without any secret.
func (o Options) GoString() string { return o.String() }

// Client talks to CC-FS, CC-CMS and OIFDE. Create it with New.
type Client struct {
	o      Options
	log    *zap.Logger
	fs     *url.URL
	cms    *url.URL
	oifde  *url.URL
	signed *http.Client // CC-FS and CC-CMS: auth-v2
	plain  *http.Client // OIFDE: token in the body
	lim    *limiter
	tok    tokenCache

	// authRetryWait bounds the wait before a 401 is retried, which lets the
	// signature's one-second timestamp move on. Tests set it to 0.
	authRetryWait time.Duration
}

// String describes the client without any secret.
func (c *Client) String() string { return "cecclient.Client{" + c.o.String() + "}" }

// GoString describes the client without any secret.
func (c *Client) GoString() string { return c.String() }

// New validates o, fills in the defaults and builds a Client.
func New(o Options) (*Client, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	log := o.Logger.Named("cecclient")
	o.setDefaults()
	var errs []error
	var plain []string
	parse := func(field, raw string) *url.URL {
		if raw == "" {
			return nil
		}
		u, err := parseBaseURL(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return nil
		}
		if u.Scheme == "http" {
			plain = append(plain, field)
		}
		return u
	}
	c := &Client{o: o, log: log, authRetryWait: time.Second}
	c.fs = parse("FSURL", o.FSURL)
	c.cms = parse("CMSURL", o.CMSURL)
	c.oifde = parse("OIFDEURL", o.OIFDEURL)
	if o.FSURL == "" && o.CMSURL == "" && o.OIFDEURL == "" {
		errs = append(errs, errors.New("one of FSURL, CMSURL, OIFDEURL is required"))
	}
	var signer *Signer
	if o.FSURL != "" || o.CMSURL != "" {
		if o.AK == "" {
			errs = append(errs, errors.New("AK is required with FSURL or CMSURL"))
		}
		if o.SK == "" {
			errs = append(errs, errors.New("SK is required with FSURL or CMSURL"))
		}
		if o.AK != "" && o.SK != "" {
			s, err := NewSigner(o.AK, o.SK, o.SignedHeaders)
			if err != nil {
				errs = append(errs, fmt.Errorf("SignedHeaders: %w", err))
			}
			signer = s
		}
	}
	if o.OIFDEURL != "" {
		if o.TenantID == "" {
			errs = append(errs, errors.New("TenantID is required with OIFDEURL"))
		}
		if o.APIPassword == "" {
			errs = append(errs, errors.New("APIPassword is required with OIFDEURL"))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"BaseBackoff", o.BaseBackoff}, {"MaxBackoff", o.MaxBackoff}, {"MaxRetryAfter", o.MaxRetryAfter},
		{"DialTimeout", o.DialTimeout}, {"TLSHandshakeTimeout", o.TLSHandshakeTimeout},
		{"ResponseHeaderTimeout", o.ResponseHeaderTimeout}, {"StallTimeout", o.StallTimeout},
		{"MinRateWindow", o.MinRateWindow},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative", d.name))
		}
	}
	if o.RateLimit < 0 || o.Burst < 0 || o.MaxAttempts < 0 || o.MaxJSONBytes < 0 || o.UploadMaxBytes < 0 {
		errs = append(errs, errors.New("RateLimit, Burst, MaxAttempts, MaxJSONBytes and UploadMaxBytes must not be negative"))
	}
	if o.MaxRecordingBytes < 0 {
		errs = append(errs, errors.New("MaxRecordingBytes is negative"))
	}
	if o.MaxPages < 0 {
		errs = append(errs, errors.New("MaxPages is negative"))
	}
	if strings.ContainsAny(o.UserAgent, "\r\n") {
		errs = append(errs, errors.New("UserAgent contains a line break"))
	}
	tr, err := newTransport(&o)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cec: invalid options: %w", errors.Join(errs...))
	}
	if len(plain) > 0 {
		log.Warn("cec: plain HTTP: credentials and recordings travel unencrypted", zap.Strings("fields", plain))
	}
	if o.InsecureSkipVerify {
		log.Warn("cec: TLS certificate verification is DISABLED (InsecureSkipVerify); anyone on the path can read and alter recordings and credentials")
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var base http.RoundTripper = &watchdogRT{next: tr, timeout: o.StallTimeout}
	c.plain = &http.Client{Transport: &prepareRT{next: base, ua: o.UserAgent}, CheckRedirect: noRedirect}
	if signer != nil {
		c.signed = &http.Client{
			Transport:     &prepareRT{next: base, ua: o.UserAgent, signer: signer, now: o.Now},
			CheckRedirect: noRedirect,
		}
	}
	c.lim = newLimiter(o.RateLimit, o.Burst, log)
	return c, nil
}

func (o *Options) setDefaults() {
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if o.RateLimit == 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	setDur(&o.BaseBackoff, DefaultBaseBackoff)
	setDur(&o.MaxBackoff, DefaultMaxBackoff)
	setDur(&o.MaxRetryAfter, DefaultMaxRetryAfter)
	setDur(&o.DialTimeout, DefaultDialTimeout)
	setDur(&o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	setDur(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	setDur(&o.StallTimeout, DefaultStallTimeout)
	if o.MaxJSONBytes == 0 {
		o.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if o.UploadMaxBytes == 0 {
		o.UploadMaxBytes = DefaultUploadMaxBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.MaxRecordingBytes == 0 {
		o.MaxRecordingBytes = DefaultMaxRecordingBytes
	}
	if o.MinRate == 0 {
		o.MinRate = DefaultMinRate
	}
	setDur(&o.MinRateWindow, DefaultMinRateWindow)
	if o.MaxPages == 0 {
		o.MaxPages = DefaultMaxPages
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// parseBaseURL accepts http(s)://host[:port][/prefix] and nothing else.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("scheme must be https or http, not %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("host is missing")
	case u.User != nil:
		return nil, errors.New("credentials in the URL are not allowed")
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, errors.New("query and fragment are not allowed")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// RateLimit returns the current request rate of the shared limiter in
// requests per second (lower than Options.RateLimit after throttling).
func (c *Client) RateLimit() float64 { return c.lim.limit() }

// request is one logical call, replayed on every attempt.
type request struct {
	service string // ServiceFS, ServiceCMS, ServiceOIFDE
	op      string // "download record"
	obj     string // displayName of the object, for errors; may be ""
	base    *url.URL
	path    string
	query   url.Values
	body    []byte   // serialised once; signed and sent as is on every attempt
	secrets []string // request-specific secrets (the token) to scrub from answers
	maxBody int64    // bound on a download body; 0 = none (bill files: the caller bounds them)
	// refreshAuth: the caller sends the request once more, with a fresh
	// token, after a 900001 or HTTP 401 (fetchPage's single refresh).
	refreshAuth bool
}

// wrap gives err the package's context: "cec: <op> <obj>: <err>".
func (rq *request) wrap(err error) error {
	if rq.obj == "" {
		return fmt.Errorf("cec: %s: %w", rq.op, err)
	}
	return fmt.Errorf("cec: %s %s: %w", rq.op, rq.obj, err)
}

func (c *Client) newRequest(service, op, obj, path string, query url.Values, body any) (*request, error) {
	var base *url.URL
	switch service {
	case ServiceFS:
		base = c.fs
	case ServiceCMS:
		base = c.cms
	case ServiceOIFDE:
		base = c.oifde
	}
	rq := &request{service: service, op: op, obj: obj, base: base, path: path, query: query}
	if base == nil || (service != ServiceOIFDE && c.signed == nil) {
		return rq, rq.wrap(fmt.Errorf("%w: %s", ErrNotConfigured, service))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return rq, rq.wrap(err)
	}
	rq.body = b
	return rq, nil
}

// endpoint builds the URL from the configured base and re-checks that it
// still points at the configured host (reliability.md §3.5).
func (rq *request) endpoint() (string, error) {
	u := url.URL{Scheme: rq.base.Scheme, Host: rq.base.Host, Path: rq.base.Path + rq.path}
	if len(rq.query) > 0 {
		u.RawQuery = rq.query.Encode()
	}
	s := u.String()
	back, err := url.Parse(s)
	if err != nil || back.Scheme != rq.base.Scheme || back.Host != rq.base.Host {
		return "", fmt.Errorf("%w: URL leaves the configured host", ErrInvalidArgument)
	}
	return s, nil
}

// send performs one attempt: it waits for the shared limiter and sends the
// request. The caller owns the response body.
func (c *Client) send(ctx context.Context, rq *request) (*http.Response, error) {
	if err := c.lim.wait(ctx); err != nil {
		return nil, err
	}
	u, err := rq.endpoint()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(rq.body))
	if err != nil {
		return nil, err
	}
	req.Host = rq.base.Host
	req.Header.Set("Content-Type", contentTypeJSON)
	req.Header.Set("Accept", "*/*")
	hc := c.plain
	if rq.service != ServiceOIFDE {
		hc = c.signed
	}
	resp, err := hc.Do(req)
	if ue, ok := err.(*url.Error); ok {
		// The query may hold upstream values; name the endpoint only.
		ue.URL = rq.base.Scheme + "://" + rq.base.Host + rq.base.Path + rq.path
	}
	return resp, err
}

// contentTypeJSON is the value Huawei's demos send (and vector A signs); the
// value sent is the value signed.
const contentTypeJSON = cecwire.ContentTypeJSON

// do runs attempts of rq until one succeeds or fails for good. handle gets
// every response with a 2xx status and no Content-Encoding; the body is
// closed for it when it fails, and it may keep the body open on success
// (downloads). Non-2xx answers become *APIError. A 401 to a signed request
// is retried once, at once, with a fresh signature.
func (c *Client) do(ctx context.Context, rq *request, handle func(*http.Response) error) error {
	var err error
	retried401 := false
	for attempt := 1; ; attempt++ {
		start := time.Now()
		status, clen := 0, int64(-1)
		err = func() error {
			resp, err := c.send(ctx, rq)
			if err != nil {
				return err
			}
			status, clen = resp.StatusCode, resp.ContentLength
			c.checkSkew(rq, resp)
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				defer resp.Body.Close()
				return c.statusError(rq, resp)
			}
			if err := checkEncoding(resp); err != nil {
				resp.Body.Close()
				return err
			}
			if err := handle(resp); err != nil {
				resp.Body.Close()
				return err
			}
			return nil
		}()
		var ae *APIError
		if errors.As(err, &ae) {
			ae.Desc = c.scrub(ae.Desc, rq.secrets)
		}
		d := time.Since(start)
		c.logAttempt(rq, attempt, status, clen, d, err)
		ri := RequestInfo{Service: rq.service, Op: rq.op, Attempt: attempt, HTTPStatus: status, Err: err, Duration: d}
		if err == nil {
			c.observe(ri)
			c.lim.success()
			return nil
		}
		if ae != nil {
			ri.ResultCode = ae.ResultCode
			if ae.throttled() || ae.RetryAfter > 0 {
				ri.Throttled = true
				c.lim.throttle(ae.RetryAfter, ae.throttled())
			}
		}
		// final reports the attempt as the last one of the call and returns
		// its error.
		final := func() error {
			ri.Retry = rq.refreshAuth && (isTokenInvalid(err) || isUnauthorized(err)) && ctx.Err() == nil
			c.observe(ri)
			return rq.wrap(err)
		}
		if !retried401 && rq.service != ServiceOIFDE && isUnauthorized(err) && ctx.Err() == nil {
			// A gateway may refuse one signature (a replayed nonce, a clock
			// step); a second refusal is the credentials' fault.
			retried401 = true
			c.log.Warn("cec: HTTP 401; retrying once with a fresh signature",
				zap.String("service", rq.service), zap.String("op", rq.op), zap.Int("attempt", attempt))
			if sleep(ctx, c.nextSecond()) != nil {
				return final()
			}
			ri.Retry = true
			c.observe(ri)
			continue
		}
		cls := Classify(err)
		if cls == NotFound {
			c.lim.success()
		}
		if cls != Transient || isTokenInvalid(err) || attempt >= c.o.MaxAttempts || ctx.Err() != nil {
			return final()
		}
		delay := c.backoff(attempt)
		if p := c.lim.pauseRemaining(); p > delay {
			delay = p
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return final()
		}
		c.log.Debug("cec: retrying", zap.String("service", rq.service), zap.String("op", rq.op),
			zap.Int("attempt", attempt), zap.Duration("delay", delay))
		if sleep(ctx, delay) != nil {
			return final()
		}
		ri.Retry = true
		c.observe(ri)
	}
}

// nextSecond is the wait until the signing clock shows the next second, so
// that a new signature carries a new timestamp; at most c.authRetryWait.
func (c *Client) nextSecond() time.Duration {
	d := time.Second - time.Duration(c.o.Now().Nanosecond())
	return max(0, min(d, c.authRetryWait))
}

// checkEncoding refuses a body with a Content-Encoding other than identity.
// The transport never decodes one (DisableCompression): a decoded body would
// lose its Content-Length and with it the truncation check, and an undecoded
// one must not be stored as a recording.
func checkEncoding(resp *http.Response) error {
	for _, v := range resp.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return fmt.Errorf("%w: Content-Encoding %q", ErrUnexpectedContent, truncate(strings.TrimSpace(v), 64))
			}
		}
	}
	return nil
}

// scrub removes the client's credentials from text a server sent back (an
// error description that echoes the request).
func (c *Client) scrub(s string, extra []string) string {
	for _, secret := range append([]string{c.o.SK, c.o.APIPassword, c.o.AK}, extra...) {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "<redacted>")
		}
	}
	return s
}

// backoff is exponential with full jitter: uniform in [0, min(Max, Base·2^(n-1))].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.o.BaseBackoff
	for i := 1; i < attempt && d < c.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.o.MaxBackoff)
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func (c *Client) logAttempt(rq *request, attempt, status int, clen int64, d time.Duration, err error) {
	if ce := c.log.Check(zap.DebugLevel, "cec: request"); ce != nil {
		fields := []zap.Field{
			zap.String("service", rq.service), zap.String("op", rq.op), zap.Int("attempt", attempt),
			zap.Int("status", status), zap.Duration("duration", d),
			zap.Int("bytes_sent", len(rq.body)), zap.Int64("content_length", clen),
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.ResultCode != "" {
			fields = append(fields, zap.String("result_code", ae.ResultCode))
		}
		if err != nil {
			fields = append(fields, zap.String("class", Classify(err).String()), zap.Error(err))
		}
		ce.Write(fields...)
	}
}

// checkSkew warns when the server's Date header is far from our clock: a
// skewed clock makes auth-v2 fail with 401 (reliability.md F12).
func (c *Client) checkSkew(rq *request, resp *http.Response) {
	if resp.StatusCode != http.StatusUnauthorized {
		return
	}
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return
	}
	if skew := c.o.Now().Sub(d); skew > time.Minute || skew < -time.Minute {
		c.log.Warn("cec: 401 and the local clock differs from the server's; check NTP",
			zap.String("service", rq.service), zap.Duration("skew", skew.Round(time.Second)))
	}
}

// errorBody is every error shape the three services use, decoded leniently.
type errorBody struct {
	ResultCode   cecwire.FlexString `json:"resultCode"`
	ResultDesc   string             `json:"resultDesc"`
	ErrorCode    cecwire.FlexString `json:"errorCode"`
	ErrorMessage string             `json:"errorMessage"`
	ErrorMsg     string             `json:"errorMsg"`
	Response     *struct {
		ResultCode cecwire.FlexString `json:"resultCode"`
		ResultMsg  string             `json:"resultMsg"`
	} `json:"response"`
}

// code returns the result code and description, whichever fields carry them.
func (e *errorBody) code() (code, desc string, ok bool) {
	switch {
	case e.ResultCode != "":
		return string(e.ResultCode), e.ResultDesc, true
	case e.ErrorCode != "":
		return string(e.ErrorCode), firstNonEmpty(e.ErrorMessage, e.ErrorMsg), true
	case e.Response != nil && e.Response.ResultCode != "":
		return string(e.Response.ResultCode), e.Response.ResultMsg, true
	}
	return "", "", false
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// statusError turns a non-2xx answer into an *APIError, reading at most
// 64 KiB of the body for a result code.
func (c *Client) statusError(rq *request, resp *http.Response) error {
	ae := &APIError{Service: rq.service, Op: rq.op, HTTPStatus: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil {
		ae.ResultCode, ae.Desc, _ = eb.code()
	}
	if ae.Desc == "" {
		ae.Desc = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		ae.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.o.Now(), c.o.MaxRetryAfter)
	}
	return ae
}

// parseRetryAfter reads delta-seconds or an HTTP-date (RFC 9110 §10.2.3),
// capped at maxWait. Unparseable or past values give 0.
func parseRetryAfter(v string, now time.Time, maxWait time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := parseUint(v); err == nil {
		if n > uint64(maxWait/time.Second) {
			return maxWait
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxWait))
}

// parseUint parses decimal digits, saturating instead of overflowing.
func parseUint(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("not a number")
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a number")
		}
		if n > (math.MaxUint64-9)/10 {
			n = math.MaxUint64
			continue
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n, nil
}

// readJSON reads a whole JSON answer, at most max bytes, and closes it.
func readJSON(body io.ReadCloser, max int64) ([]byte, error) {
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return b, nil
}

// resultError checks a CC-FS/CC-CMS JSON answer: success codes give nil.
func resultError(rq *request, status int, b []byte) error {
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		return decodeErr("answer", err)
	}
	code, desc, ok := eb.code()
	if !ok {
		return &APIError{Service: rq.service, Op: rq.op, HTTPStatus: status, Desc: "answer without resultCode"}
	}
	if code != cecwire.CodeSuccess && code != cecwire.CodeSuccessCMS {
		return &APIError{Service: rq.service, Op: rq.op, HTTPStatus: status, ResultCode: code, Desc: desc}
	}
	return nil
}
