package cecclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	api := func(status int, code, desc string) error {
		return fmt.Errorf("cec: op: %w", &APIError{Service: ServiceFS, Op: "op", HTTPStatus: status, ResultCode: code, Desc: desc})
	}
	for _, c := range []struct {
		name string
		err  error
		want Class
	}{
		{"500", api(500, "", ""), Transient},
		{"502 WAF", api(502, "", ""), Transient},
		{"503", api(503, "", ""), Transient},
		{"429", api(429, "", ""), Transient},
		{"418 WAF", api(418, "", ""), Transient},
		{"401", api(401, "", ""), Permanent},
		{"403", api(403, "", ""), Permanent},
		{"404 unknown", api(404, "", ""), Permanent},
		{"download flow control", api(200, "0300008", ""), Transient},
		{"query flow control", api(200, "0300009", ""), Transient},
		{"no data", api(200, "0300012", "No data found"), NotFound},
		{"record list empty", api(200, "1", "Record List is empty"), NotFound},
		{"param null", api(200, "0300001", ""), Permanent},
		{"version", api(200, "0300006", ""), Permanent},
		{"body null", api(200, "0300007", ""), Permanent},
		{"file date", api(200, "0300010", ""), Permanent},
		{"param error", api(200, "0300028", ""), Permanent},
		{"unknown code", api(200, "0399999", ""), Permanent},
		{"oifde token", &APIError{Service: ServiceOIFDE, HTTPStatus: 200, ResultCode: "900001"}, Transient},
		{"stalled", fmt.Errorf("x: %w", ErrStalled), Transient},
		{"unexpected EOF", fmt.Errorf("x: %w", io.ErrUnexpectedEOF), Transient},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, Transient},
		{"refused", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, Transient},
		{"timeout", &url.Error{Op: "Post", URL: "u", Err: timeoutErr{}}, Transient},
		{"deadline", context.DeadlineExceeded, Transient},
		{"unknown authority", &url.Error{Op: "Post", URL: "u", Err: x509.UnknownAuthorityError{}}, Permanent},
		{"hostname", &url.Error{Op: "Post", URL: "u", Err: x509.HostnameError{Host: "h"}}, Permanent},
		{"invalid record", fmt.Errorf("x: %w", ErrInvalidRecord), Permanent},
		{"invalid wav", ValidateUploadWAV(nil, 0), Permanent},
		{"empty body", ErrEmptyBody, Transient},
		{"html page", ErrUnexpectedContent, Permanent},
		{"content encoding", fmt.Errorf("cec: download x: %w: Content-Encoding \"gzip\"", ErrUnexpectedContent), Permanent},
		{"too large", ErrTooLarge, Permanent},
		{"too slow", fmt.Errorf("cec: download x: read body: %w", ErrTooSlow), Transient},
		{"invalid answer", fmt.Errorf("x: %w", ErrInvalidAnswer), Permanent},
		{"too many pages", fmt.Errorf("x: %w: %w", ErrInvalidAnswer, ErrTooManyPages), Permanent},
		{"decode error", decodeErr("page", errors.New("unexpected end of JSON input")), Permanent},
		{"unknown", errors.New("boom"), Permanent},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Classify(c.err); got != c.want {
				t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
			}
			helpers := map[Class]func(error) bool{Transient: IsTransient, NotFound: IsNotFound, Permanent: IsPermanent}
			for cl, f := range helpers {
				if f(c.err) != (cl == c.want) {
					t.Errorf("Is%v = %v", cl, f(c.err))
				}
			}
		})
	}
	if IsTransient(nil) || IsNotFound(nil) || IsPermanent(nil) {
		t.Error("a nil error has a class")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"999999999999999999999", 5 * time.Minute},
		{"86400", 5 * time.Minute},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(http.TimeFormat), 5 * time.Minute},
		{"-5", 0},
		{"soon", 0},
	} {
		if got := parseRetryAfter(c.in, now, 5*time.Minute); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestMaskDigits(t *testing.T) {
	for in, want := range map[string]string{
		"13800138000":                 "*******8000",
		"Y:/39/20201015/1023394.wav":  "Y:/39/****1015/***3394.wav",
		"call 12345 ok":               "call 12345 ok",
		"+8613800138000,13800138000x": "+*********8000,*******8000x",
	} {
		if got := maskDigits(in); got != want {
			t.Errorf("maskDigits(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAPIError_Error(t *testing.T) {
	e := &APIError{Service: ServiceFS, Op: "download record", HTTPStatus: 200, ResultCode: "0300012",
		Desc: "file " + testPhone + ".wav not found", RetryAfter: 2 * time.Second}
	got := e.Error()
	if strings.Contains(got, testPhone) {
		t.Errorf("phone number in %q", got)
	}
	for _, w := range []string{"CC-FS", "HTTP 200", "0300012", "8000.wav not found", "retry after 2s"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q lacks %q", got, w)
		}
	}
}

func TestIsAuth(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"401", fmt.Errorf("cec: op: %w", &APIError{Service: ServiceFS, Op: "download record", HTTPStatus: 401}), true},
		{"403 CMS", &APIError{Service: ServiceCMS, Op: "download", HTTPStatus: 403}, true},
		{"403 OIFDE", &APIError{Service: ServiceOIFDE, Op: "query", HTTPStatus: 403}, true},
		{"gettoken refused", fmt.Errorf("x: %w", &APIError{Service: ServiceOIFDE, Op: opGetToken, HTTPStatus: 200, ResultCode: "1", Desc: "appKey or appSecret is wrong"}), true},
		{"gettoken without token", &APIError{Service: ServiceOIFDE, Op: opGetToken, HTTPStatus: 200, Desc: "no usable authToken in the answer"}, false},
		{"gettoken 503", &APIError{Service: ServiceOIFDE, Op: opGetToken, HTTPStatus: 503}, false},
		{"oifde query code", &APIError{Service: ServiceOIFDE, Op: "query records", HTTPStatus: 200, ResultCode: "1"}, false},
		{"500", &APIError{Service: ServiceFS, Op: "op", HTTPStatus: 500}, false},
		{"parameter error", &APIError{Service: ServiceFS, Op: "op", HTTPStatus: 200, ResultCode: "0300028"}, false},
		{"network", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, false},
		{"plain", errors.New("401 unauthorized"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := IsAuth(c.err); got != c.want {
				t.Errorf("IsAuth(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

func TestIsContentError(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"html page", fmt.Errorf("cec: op: %w: HTML page", ErrUnexpectedContent), true},
		{"content encoding", fmt.Errorf("cec: op: %w: Content-Encoding \"gzip\"", ErrUnexpectedContent), true},
		{"too large", fmt.Errorf("cec: op: %w", ErrTooLarge), true},
		{"invalid answer", fmt.Errorf("cec: op: %w", ErrInvalidAnswer), true},
		{"too many pages", ErrTooManyPages, true},
		{"invalid record", ErrInvalidRecord, true},
		{"too slow", ErrTooSlow, false},
		{"stalled", ErrStalled, false},
		{"empty body", ErrEmptyBody, false},
		{"401", &APIError{Service: ServiceFS, HTTPStatus: 401}, false},
		{"truncated", io.ErrUnexpectedEOF, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := IsContentError(c.err); got != c.want {
				t.Errorf("IsContentError(%v) = %v, want %v", c.err, got, c.want)
			}
			if c.want && (IsAuth(c.err) || Classify(c.err) != Permanent) {
				t.Errorf("content error %v: IsAuth %v, class %v", c.err, IsAuth(c.err), Classify(c.err))
			}
		})
	}
}
