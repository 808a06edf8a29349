package cecclient

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// ErrUnauthorized is wrapped by every error VerifyRequest returns.
var ErrUnauthorized = errors.New("cec: request not authorised")

// DefaultMaxSkew is the clock skew VerifyRequest allows when it is given none.
// cec-api.md §1.4 documents no window; 15 minutes is the Huawei APIG figure.
const DefaultMaxSkew = 15 * time.Minute

// HexHmac returns the lowercase hex HMAC-SHA256 of msg keyed with the UTF-8
// bytes of key (cec-api.md §1.2).
func HexHmac(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	io.WriteString(m, msg)
	return hex.EncodeToString(m.Sum(nil))
}

// Normalize percent-encodes every byte of s except A-Z a-z 0-9 - . _ ~, with
// uppercase hex digits. Space becomes %20 and / becomes %2F.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	appendNormalized(&b, s)
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

const upperHex = "0123456789ABCDEF"

// byteWriter is what both strings.Builder and bufio.Writer offer.
type byteWriter interface {
	io.Writer
	io.StringWriter
	io.ByteWriter
}

func appendNormalized[S string | []byte](w byteWriter, s S) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			w.WriteByte(c)
			continue
		}
		w.WriteByte('%')
		w.WriteByte(upperHex[c>>4])
		w.WriteByte(upperHex[c&15])
	}
}

// SignInput is everything that enters an auth-v2 signature.
type SignInput struct {
	Method string
	// Path is the path exactly as it appears on the request line (not encoded again).
	Path  string
	Query url.Values
	// Headers holds the signed headers only: name → value exactly as sent.
	// Names are lower-cased and sorted by the signer.
	Headers map[string]string
	Body    []byte
	Time    time.Time
}

// Signature is the result of ComputeSignature, with every intermediate value
// so that tests can compare them with a reference. SigningKey is derived from
// the SK: treat it as secret.
type Signature struct {
	AuthStringPrefix string
	SigningKey       string
	CanonicalRequest string
	Signature        string
	Authorization    string
}

// SignedHeaderList returns the lower-cased, sorted, ';'-joined header names of h.
func SignedHeaderList(h map[string]string) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, strings.ToLower(k))
	}
	slices.Sort(names)
	return strings.Join(names, ";")
}

// AuthStringPrefix returns "auth-v2/{ak}/{timestamp}/{signedHeaders}".
func AuthStringPrefix(ak string, t time.Time, signedHeaders string) string {
	return cecwire.AuthV2Prefix + "/" + ak + "/" + t.UTC().Format(cecwire.SignTimeLayout) + "/" + signedHeaders
}

// ComputeSignature computes an auth-v2 signature and its intermediate values
// exactly as cec-api.md §1.2 describes. It builds the whole canonical request
// in memory; Signer.Sign streams it instead.
func ComputeSignature(ak, sk string, in SignInput) Signature {
	list := SignedHeaderList(in.Headers)
	prefix := AuthStringPrefix(ak, in.Time, list)
	key := HexHmac(sk, prefix)
	var b strings.Builder
	writeCanonical(&b, in.Method, in.Path, in.Query, list, lowerHeaders(in.Headers), in.Body)
	canon := b.String()
	sig := HexHmac(key, canon)
	return Signature{
		AuthStringPrefix: prefix,
		SigningKey:       key,
		CanonicalRequest: canon,
		Signature:        sig,
		Authorization:    prefix + "/" + sig,
	}
}

func lowerHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = v
	}
	return out
}

// writeCanonical writes the canonical request. names is the SignedHeaders
// string as it appears in the auth string prefix; values maps each of its
// names to the header value.
func writeCanonical(w byteWriter, method, path string, query url.Values, names string, values map[string]string, body []byte) {
	w.WriteString(method)
	w.WriteByte('\n')
	w.WriteString(path)
	w.WriteByte('\n')
	if len(query) > 0 {
		pairs := make([]string, 0, len(query))
		for k, vs := range query {
			for _, v := range vs {
				pairs = append(pairs, Normalize(k)+"="+Normalize(v))
			}
		}
		slices.Sort(pairs)
		if len(pairs) > 0 {
			w.WriteString(strings.Join(pairs, "&"))
			w.WriteByte('\n')
		}
	}
	w.WriteString(names)
	w.WriteByte('\n')
	lines := make([]string, 0, len(values))
	for _, n := range strings.Split(names, ";") {
		lines = append(lines, Normalize(strings.ToLower(n))+":"+Normalize(values[n]))
	}
	slices.Sort(lines)
	w.WriteString(strings.Join(lines, "\n"))
	w.WriteByte('\n')
	if len(body) > 0 {
		appendNormalized(w, body)
	}
}

// hmacHex streams the canonical request into HMAC-SHA256(key) so that a large
// body is never held three times in memory.
func hmacHex(key string, write func(w byteWriter)) string {
	m := hmac.New(sha256.New, []byte(key))
	bw := hmacWriters.Get().(*bufio.Writer)
	bw.Reset(m)
	write(bw)
	bw.Flush()
	bw.Reset(nil)
	hmacWriters.Put(bw)
	return hex.EncodeToString(m.Sum(nil))
}

// hmacWriters are the buffered writers of hmacHex, reused: one per signature
// would be 32 KiB of garbage per request.
var hmacWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// Signer signs requests with auth-v2 (cec-api.md §1). It is safe for
// concurrent use. Its String method never prints the keys.
type Signer struct {
	ak, sk  string
	headers []string // lower-case, sorted, unique; always contains "host"
	list    string
}

// NewSigner returns a Signer for ak/sk that signs the named headers
// (case-insensitive). An empty list means content-length;content-type;host.
// "host" must be in the list.
func NewSigner(ak, sk string, signedHeaders []string) (*Signer, error) {
	if ak == "" || sk == "" {
		return nil, errors.New("cec: signer: AK and SK are required")
	}
	if strings.ContainsAny(ak, "\r\n") {
		return nil, errors.New("cec: signer: AK contains a line break")
	}
	if len(signedHeaders) == 0 {
		signedHeaders = strings.Split(cecwire.DefaultSignedHeaders, ";")
	}
	var hs []string
	for _, h := range signedHeaders {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || !validToken(h) {
			return nil, fmt.Errorf("cec: signer: invalid signed header name %q", h)
		}
		if h == "authorization" {
			return nil, errors.New("cec: signer: the authorization header cannot be signed")
		}
		hs = append(hs, h)
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	if !slices.Contains(hs, "host") {
		return nil, errors.New("cec: signer: signed headers must include host")
	}
	return &Signer{ak: ak, sk: sk, headers: hs, list: strings.Join(hs, ";")}, nil
}

// String describes the signer without its keys.
func (s *Signer) String() string { return "cecclient.Signer{" + s.list + "}" }

// GoString describes the signer without its keys.
func (s *Signer) GoString() string { return s.String() }

// SignedHeaders returns the ';'-joined list of signed header names.
func (s *Signer) SignedHeaders() string { return s.list }

// Sign makes req carry exactly body and signs it at time now. It sets
// req.Body (a replayable bytes reader, never chunked), req.ContentLength,
// req.Host (to the host that is signed) and the Authorization header. Sign
// must be called again, with a new time, for every attempt: a signed request
// is never replayed.
func (s *Signer) Sign(req *http.Request, body []byte, now time.Time) error {
	if req.URL == nil || req.URL.Opaque != "" {
		return errors.New("cec: sign: request has no usable URL")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" {
		return errors.New("cec: sign: request has no host")
	}
	req.Host = host
	values := make(map[string]string, len(s.headers))
	for _, h := range s.headers {
		switch h {
		case "host":
			values[h] = host
		case "content-length":
			values[h] = strconv.Itoa(len(body))
		default:
			vs := req.Header.Values(h)
			if len(vs) != 1 {
				return fmt.Errorf("cec: sign: signed header %s must be sent exactly once, have %d", h, len(vs))
			}
			v := vs[0]
			if v != strings.TrimSpace(v) {
				return fmt.Errorf("cec: sign: signed header %s has leading or trailing space", h)
			}
			if !validHeaderValue(v) {
				return fmt.Errorf("cec: sign: signed header %s has an invalid value", h)
			}
			values[h] = v
		}
	}
	req.TransferEncoding = nil
	if len(body) == 0 {
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		req.ContentLength = 0
	} else {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	if req.Method == "" {
		req.Method = http.MethodGet // what net/http sends for ""
	}
	path := requestPath(req.URL)
	query := req.URL.Query()
	prefix := AuthStringPrefix(s.ak, now, s.list)
	key := HexHmac(s.sk, prefix)
	sig := hmacHex(key, func(w byteWriter) {
		writeCanonical(w, req.Method, path, query, s.list, values, body)
	})
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Authorization", prefix+"/"+sig)
	return nil
}

// requestPath is the path as it appears on the request line.
func requestPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return p
}

// VerifyRequest checks the auth-v2 signature of a received request, for
// example the CC-FS callback. body is the complete request body the caller
// has read (bounded). lookup maps an AK to its SK. The timestamp must lie
// within maxSkew of now (DefaultMaxSkew when maxSkew ≤ 0). It returns the AK
// on success. Every error wraps ErrUnauthorized and never contains a key.
// Header values are trimmed before they are compared, as the receiver-side
// guide (cec_05_1223) does.
func VerifyRequest(r *http.Request, body []byte, lookup func(ak string) (sk string, ok bool), now time.Time, maxSkew time.Duration) (ak string, err error) {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	fail := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w: "+format, append([]any{ErrUnauthorized}, a...)...)
	}
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return fail("want one Authorization header, have %d", len(auths))
	}
	auth := strings.TrimSpace(auths[0])
	rest, ok := strings.CutPrefix(auth, cecwire.AuthV2Prefix+"/")
	if !ok {
		return fail("not an auth-v2 Authorization")
	}
	// {ak}/{ts}/{headers}/{sig}: the last three parts hold no '/', the AK might.
	parts := make([]string, 3)
	for i := 2; i >= 0; i-- {
		j := strings.LastIndexByte(rest, '/')
		if j < 0 {
			return fail("malformed Authorization")
		}
		parts[i], rest = rest[j+1:], rest[:j]
	}
	ak = rest
	ts, list, sig := parts[0], parts[1], parts[2]
	if ak == "" || list == "" || len(sig) != sha256.Size*2 {
		return fail("malformed Authorization")
	}
	t, err := time.Parse(cecwire.SignTimeLayout, ts)
	if err != nil {
		return fail("malformed timestamp")
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return fail("timestamp %s is %s away from now, more than %s", ts, d.Round(time.Second), maxSkew)
	}
	values := make(map[string]string)
	hasHost := false
	for _, n := range strings.Split(list, ";") {
		if n == "" {
			return fail("empty name in signed headers")
		}
		if _, dup := values[n]; dup {
			return fail("header %s signed twice", n)
		}
		switch strings.ToLower(n) {
		case "host":
			hasHost = true
			values[n] = r.Host
		case "content-length":
			if r.ContentLength != int64(len(body)) {
				return fail("content-length is signed but the body has %d bytes, Content-Length %d", len(body), r.ContentLength)
			}
			values[n] = strconv.Itoa(len(body))
		default:
			if len(r.Header.Values(n)) == 0 {
				return fail("signed header %s is missing", n)
			}
			values[n] = strings.TrimSpace(r.Header.Get(n))
		}
	}
	if !hasHost {
		return fail("host is not signed")
	}
	sk, ok := lookup(ak)
	if !ok {
		return fail("unknown access key")
	}
	prefix := cecwire.AuthV2Prefix + "/" + ak + "/" + ts + "/" + list
	key := HexHmac(sk, prefix)
	want := hmacHex(key, func(w byteWriter) {
		writeCanonical(w, r.Method, requestPath(r.URL), r.URL.Query(), list, values, body)
	})
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sig))) {
		return fail("signature mismatch")
	}
	return ak, nil
}

// DecodeBillCallback decodes the body CC-FS POSTs to callBackURL when a bill
// package is ready: {"request":{"version":"2.0"},"msgBody":{responseId,
// billFileName, accountId}}. The caller bounds and verifies the body first
// (VerifyRequest). billFileName must be present, valid UTF-8 and free of
// control characters; the version is not checked (lenient).
func DecodeBillCallback(body []byte) (cecwire.BillCallbackBody, error) {
	var env cecwire.Envelope[cecwire.BillCallbackBody]
	if err := json.Unmarshal(body, &env); err != nil {
		return cecwire.BillCallbackBody{}, fmt.Errorf("cec: decode bill callback: %w", err)
	}
	cb := env.MsgBody
	if err := checkText("msgBody.billFileName", cb.BillFileName, 255); err != nil {
		return cecwire.BillCallbackBody{}, fmt.Errorf("cec: decode bill callback: %w", err)
	}
	if cb.ResponseID != "" {
		if err := checkText("msgBody.responseId", cb.ResponseID, 255); err != nil {
			return cecwire.BillCallbackBody{}, fmt.Errorf("cec: decode bill callback: %w", err)
		}
	}
	return cb, nil
}

// checkText rejects empty, over-long, invalid-UTF-8, U+FFFD-bearing and
// control-character values of a field.
func checkText(field, s string, maxLen int) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", field)
	case len(s) > maxLen:
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(s), maxLen)
	case !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError):
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains a control character", field)
		}
	}
	return nil
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+^`|", rune(c)) {
			return false
		}
	}
	return s != ""
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
