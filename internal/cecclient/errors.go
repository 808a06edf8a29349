package cecclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Service names used in APIError.Service and in logs.
const (
	ServiceFS    = "CC-FS"
	ServiceCMS   = "CC-CMS"
	ServiceOIFDE = "OIFDE"
)

// Sentinel errors. Each one has a fixed Class (see Classify).
var (
	// ErrStalled: a transfer made no progress for Options.StallTimeout. Transient.
	ErrStalled = errors.New("cec: transfer stalled")
	// ErrTooSlow: a download body arrived slower than Options.MinRate on
	// average over Options.MinRateWindow (a slow-loris body,
	// reliability.md F8). Transient: the caller retries later.
	ErrTooSlow = errors.New("cec: transfer too slow")
	// ErrTooLarge: a JSON answer was larger than Options.MaxJSONBytes, or a
	// recording larger than Options.MaxRecordingBytes (by its Content-Length,
	// before the body is read, or while it streams). Permanent; a content
	// error (IsContentError).
	ErrTooLarge = errors.New("cec: answer too large")
	// ErrEmptyBody: a download answered success with no bytes at all. Transient:
	// the file may not be complete yet.
	ErrEmptyBody = errors.New("cec: empty file")
	// ErrUnexpectedContent: an answer that is neither a file nor a CEC answer:
	// an HTML page (a WAF or proxy page) or a body with a Content-Encoding
	// other than identity (the client never decodes one: it would hide the
	// length and pass compressed bytes off as a recording). Permanent for
	// this attempt: the caller records a failure and tries again on a later
	// run. A content error (IsContentError).
	ErrUnexpectedContent = errors.New("cec: unexpected content instead of a file")
	// ErrInvalidAnswer: an answer that cannot be right: an undecodable JSON
	// answer, an OIFDE total beyond Options.MaxPages pages, or more pages than
	// Options.MaxPages. Permanent; a content error (IsContentError).
	ErrInvalidAnswer = errors.New("cec: invalid answer")
	// ErrInvalidRecord: one record of a query page is unusable (its ID is
	// empty, not valid UTF-8 or undecodable). Permanent; yielded per record,
	// the iteration goes on. A content error (IsContentError).
	ErrInvalidRecord = errors.New("cec: invalid record")
	// ErrInvalidWAV: ValidateUploadWAV rejected a file. Permanent.
	ErrInvalidWAV = errors.New("cec: invalid WAV")
	// ErrInvalidArgument: a request was rejected before it was sent. Permanent.
	ErrInvalidArgument = errors.New("cec: invalid argument")
	// ErrNotConfigured: the service's URL was not configured. Permanent.
	ErrNotConfigured = errors.New("cec: service not configured")
	// ErrTooManyPages: a query went on past ceil((total+repeated rows)/pageSize)+1
	// pages or past Options.MaxPages, or a full page held only rows already
	// seen. Every such error also matches ErrInvalidAnswer. Permanent.
	ErrTooManyPages = errors.New("cec: server returned more pages than its total allows")
)

// APIError is an answer of a CEC service that is not a success: an HTTP
// status other than 2xx, or a JSON resultCode/errorCode other than success
// (CC-FS reports its errors with HTTP 200). Its Error method never contains
// credentials; runs of digits in Desc are masked like phone numbers.
type APIError struct {
	Service    string // ServiceFS, ServiceCMS or ServiceOIFDE
	Op         string // e.g. "download record"
	HTTPStatus int
	ResultCode string // resultCode (CC-FS, CC-CMS) or errorCode (OIFDE); "" if none
	Desc       string // resultDesc / errorMessage as sent by the server
	// RetryAfter is the server's Retry-After (429/503), capped by Options.MaxRetryAfter.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Service)
	b.WriteString(" answered HTTP ")
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	if e.ResultCode != "" {
		b.WriteString(", code ")
		b.WriteString(e.ResultCode)
	}
	if e.Desc != "" {
		b.WriteString(": ")
		b.WriteString(maskDigits(truncate(e.Desc, 200)))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Class is the one classification of errors of this package.
type Class int

// The classes. The zero value is Permanent.
const (
	// Permanent: retrying the same request will not help (bad parameters,
	// authentication, unknown answers).
	Permanent Class = iota
	// Transient: retry later (5xx, 429, flow control, network faults, stalls,
	// truncated bodies).
	Transient
	// NotFound: the object is not there (yet): 0300012, "Record List is empty".
	NotFound
)

// String implements fmt.Stringer.
func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case NotFound:
		return "not-found"
	default:
		return "permanent"
	}
}

// IsTransient reports whether Classify(err) == Transient.
func IsTransient(err error) bool { return err != nil && Classify(err) == Transient }

// IsNotFound reports whether Classify(err) == NotFound.
func IsNotFound(err error) bool { return err != nil && Classify(err) == NotFound }

// IsPermanent reports whether Classify(err) == Permanent.
func IsPermanent(err error) bool { return err != nil && Classify(err) == Permanent }

// opGetToken is the Op of OIFDE gettoken requests (token.go).
const opGetToken = "get token"

// IsAuth reports whether err is CEC refusing the archiver's credentials or
// permissions: HTTP 401 or 403 from any service (a wrong AK/SK, clock skew
// beyond the signature window, a WAF blocking the source address), or OIFDE
// gettoken refusing the tenant ID or API password. Retrying does not help: an
// operator has to fix the configuration, so callers stop and report instead
// of counting the error against an item.
func IsAuth(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	if ae.HTTPStatus == 401 || ae.HTTPStatus == 403 {
		return true
	}
	return ae.Service == ServiceOIFDE && ae.Op == opGetToken && ae.ResultCode != "" && ae.class() == Permanent
}

// IsContentError reports whether err is a server answering, but with
// something unusable: ErrUnexpectedContent (an HTML page, a Content-Encoding),
// ErrTooLarge, ErrInvalidAnswer (ErrTooManyPages included) or
// ErrInvalidRecord. All of them are Permanent and none is IsAuth: the caller
// records a failure against the item and tries again on a later run.
func IsContentError(err error) bool {
	return errors.Is(err, ErrUnexpectedContent) || errors.Is(err, ErrTooLarge) ||
		errors.Is(err, ErrInvalidAnswer) || errors.Is(err, ErrTooManyPages) || errors.Is(err, ErrInvalidRecord)
}

// Classify sorts err into Transient, NotFound or Permanent:
//   - transient: HTTP 5xx, 408, 418 and 429 (WAF), flow control 0300008/0300009,
//     OIFDE token expiry 900001 (after the client's own refresh failed), connection
//     resets and refusals, timeouts, io.ErrUnexpectedEOF, ErrStalled, ErrTooSlow,
//     ErrEmptyBody, context cancellation, other transport failures;
//   - not-found: 0300012, CC-CMS "Record List is empty";
//   - permanent: 401, 403 (after the client's one retry), parameter errors
//     (0300001–0300007, 0300010, 0300028), content errors (IsContentError),
//     TLS verification failures, and anything unknown.
//
// Classify(nil) is Permanent; use the Is* helpers to test possibly-nil errors.
func Classify(err error) Class {
	if err == nil {
		return Permanent
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.class()
	}
	switch {
	case IsContentError(err):
		return Permanent
	case errors.Is(err, ErrStalled), errors.Is(err, ErrTooSlow), errors.Is(err, ErrEmptyBody):
		return Transient
	case errors.Is(err, ErrInvalidWAV), errors.Is(err, ErrInvalidArgument), errors.Is(err, ErrNotConfigured):
		return Permanent
	case isTLSVerifyError(err):
		return Permanent
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Transient
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return Permanent
		}
		return Transient
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return Transient
	}
	// Anything else the HTTP transport reports (HTTP/2 stream resets, a server
	// closing the connection) is a network fault.
	var ue *url.Error
	if errors.As(err, &ue) {
		return Transient
	}
	return Permanent
}

func isTLSVerifyError(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		rec tls.RecordHeaderError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &rec)
}

func (e *APIError) class() Class {
	switch {
	case e.HTTPStatus == 429, e.HTTPStatus == 418, e.HTTPStatus == 408, e.HTTPStatus >= 500:
		return Transient
	case e.HTTPStatus == 401, e.HTTPStatus == 403:
		return Permanent
	}
	switch e.ResultCode {
	case cecwire.CodeDownloadFlowCtl, cecwire.CodeQueryFlowCtl:
		return Transient
	case cecwire.CodeNoData:
		return NotFound
	case strconv.Itoa(cecwire.OIFDETokenInvalid):
		if e.Service == ServiceOIFDE {
			return Transient
		}
	}
	if e.isRecordListEmpty() {
		return NotFound
	}
	return Permanent
}

func (e *APIError) isRecordListEmpty() bool {
	return e.ResultCode != cecwire.CodeSuccess && e.ResultCode != cecwire.CodeSuccessCMS &&
		strings.Contains(strings.ToLower(e.Desc), strings.ToLower(cecwire.CMSRecordListEmptyDesc))
}

// throttled reports whether e asks the client to slow down.
func (e *APIError) throttled() bool {
	return e.HTTPStatus == 429 || e.ResultCode == cecwire.CodeDownloadFlowCtl || e.ResultCode == cecwire.CodeQueryFlowCtl
}

func isTokenInvalid(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Service == ServiceOIFDE && ae.ResultCode == strconv.Itoa(cecwire.OIFDETokenInvalid)
}

func invalidArg(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, a...)...)
}

// maskDigits replaces all but the last four digits of every run of six or
// more ASCII digits with '*', so that phone numbers never reach a log or an
// error string in full.
func maskDigits(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		if b[i] < '0' || b[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j-i >= 6 {
			for k := i; k < j-4; k++ {
				b[k] = '*'
			}
		}
		i = j
	}
	return string(b)
}

// displayName is how an upstream value (a file name, a call ID) appears in
// errors and logs: masked, truncated and quoted.
func displayName(s string) string {
	return strconv.Quote(maskDigits(truncate(s, 160)))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decodeErr reports a JSON decoding failure without echoing digits of the
// payload (encoding/json quotes numbers in its type errors).
func decodeErr(what string, err error) error {
	return fmt.Errorf("%w: decode %s: %s", ErrInvalidAnswer, what, maskDigits(err.Error()))
}

// isUnauthorized reports whether err is an HTTP 401 answer.
func isUnauthorized(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.HTTPStatus == 401
}
