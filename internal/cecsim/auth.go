package cecsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Reasons an auth-v2 header is rejected. VerifyAuthV2 wraps them with details.
var (
	errAuthMissing       = errors.New("missing Authorization header")
	errAuthMalformed     = errors.New("malformed Authorization header")
	errAuthUnknownAK     = errors.New("unknown AK")
	errAuthTimestamp     = errors.New("timestamp not in layout yyyy-MM-ddTHH:mm:ssZ")
	errAuthSkew          = errors.New("timestamp outside the allowed clock skew")
	errAuthNoHost        = errors.New("signedHeaders does not contain host")
	errAuthHeaderOrder   = errors.New("signedHeaders must be lowercase, sorted and unique")
	errAuthHeaderAbsent  = errors.New("a signed header is absent from the request")
	errAuthLengthChanged = errors.New("signed content-length differs from the body received")
	errAuthMismatch      = errors.New("signature mismatch")
)

// VerifyAuthV2 checks an auth-v2 Authorization header against the request as received.
// body = exact body bytes. lookup returns the SK for an AK. Returns the AK on success.
//
// The header is auth-v2/{AK}/{timestamp}/{signedHeaders}/{signature} (cec-api.md §1.2).
// Signed values are taken from the request as the server sees it: host is r.Host,
// content-length is len(body) and must equal r.ContentLength, every other header
// is r.Header's value with surrounding spaces trimmed.
func VerifyAuthV2(r *http.Request, body []byte, lookup func(ak string) (sk string, ok bool), now time.Time, maxSkew time.Duration) (ak string, err error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", errAuthMissing
	case 1:
	default:
		return "", fmt.Errorf("%w: %d Authorization headers", errAuthMalformed, len(values))
	}
	parts := strings.Split(values[0], "/")
	if len(parts) != 5 || parts[0] != cecwire.AuthV2Prefix {
		return "", fmt.Errorf("%w: want auth-v2/{AK}/{timestamp}/{signedHeaders}/{signature}", errAuthMalformed)
	}
	ak, ts, signedHeaders, sig := parts[1], parts[2], parts[3], parts[4]
	if ak == "" || signedHeaders == "" {
		return "", fmt.Errorf("%w: empty AK or signedHeaders", errAuthMalformed)
	}
	if len(sig) != sha256.Size*2 || !isLowerHex(sig) {
		return "", fmt.Errorf("%w: the signature must be 64 lowercase hex digits", errAuthMalformed)
	}
	sk, ok := lookup(ak)
	if !ok {
		return "", fmt.Errorf("%w %q", errAuthUnknownAK, ak)
	}
	t, err := time.Parse(cecwire.SignTimeLayout, ts)
	// time.Parse accepts fractional seconds the layout does not ask for; the
	// documented format has none, so the text must round-trip exactly.
	if err != nil || t.Format(cecwire.SignTimeLayout) != ts {
		return "", fmt.Errorf("%w: %q", errAuthTimestamp, ts)
	}
	if skew := now.Sub(t); skew > maxSkew || -skew > maxSkew {
		return "", fmt.Errorf("%w: %s is %s away from the server clock (max %s)", errAuthSkew, ts, now.Sub(t).Round(time.Second), maxSkew)
	}

	names := strings.Split(signedHeaders, ";")
	hasHost := false
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || (i > 0 && n <= names[i-1]) {
			return "", fmt.Errorf("%w: %q", errAuthHeaderOrder, signedHeaders)
		}
		if n == "host" {
			hasHost = true
		}
	}
	if !hasHost {
		return "", fmt.Errorf("%w: %q", errAuthNoHost, signedHeaders)
	}
	headerValues := make(map[string]string, len(names))
	for _, n := range names {
		switch n {
		case "host":
			if r.Host == "" {
				return "", fmt.Errorf("%w: host", errAuthHeaderAbsent)
			}
			headerValues[n] = r.Host
		case "content-length":
			if r.ContentLength < 0 {
				return "", fmt.Errorf("%w: content-length (chunked body)", errAuthHeaderAbsent)
			}
			if r.ContentLength != int64(len(body)) {
				return "", fmt.Errorf("%w: %d declared, %d received", errAuthLengthChanged, r.ContentLength, len(body))
			}
			headerValues[n] = strconv.Itoa(len(body))
		default:
			vs := r.Header.Values(n)
			if len(vs) == 0 {
				return "", fmt.Errorf("%w: %s", errAuthHeaderAbsent, n)
			}
			headerValues[n] = strings.TrimSpace(strings.Join(vs, ","))
		}
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: query string: %v", errAuthMalformed, err)
	}
	prefix := authStringPrefix(ak, ts, signedHeaders)
	canonical := canonicalRequest(r.Method, requestPath(r.URL), query, signedHeaders, headerValues, body)
	want := hexHMAC(hexHMAC(sk, prefix), canonical)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return "", errAuthMismatch
	}
	return ak, nil
}

// requestPath is the path exactly as the request line carried it. §1.2 signs
// the raw URI, neither encoded again nor decoded: Huawei's demo signs the
// string it puts into the URL. r.URL.Path is decoded ("/a%20b" becomes
// "/a b") and would reject every signed path that holds an escape.
func requestPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath // set by the parser whenever the path was not escaped the default way
	}
	return u.EscapedPath()
}

// signAuthV2 returns the Authorization value for a request; the simulator uses
// it to sign its callbacks. headers maps lowercase names to the values sent.
func signAuthV2(ak, sk string, ts time.Time, method, uri string, query url.Values, headers map[string]string, body []byte) string {
	names := make([]string, 0, len(headers))
	for n := range headers {
		names = append(names, n)
	}
	sort.Strings(names)
	signedHeaders := strings.Join(names, ";")
	prefix := authStringPrefix(ak, ts.UTC().Format(cecwire.SignTimeLayout), signedHeaders)
	canonical := canonicalRequest(method, uri, query, signedHeaders, headers, body)
	return prefix + "/" + hexHMAC(hexHMAC(sk, prefix), canonical)
}

func authStringPrefix(ak, ts, signedHeaders string) string {
	return cecwire.AuthV2Prefix + "/" + ak + "/" + ts + "/" + signedHeaders
}

// canonicalRequest builds the string to sign (cec-api.md §1.2). headers holds
// the value of every name listed in signedHeaders.
func canonicalRequest(method, uri string, query url.Values, signedHeaders string, headers map[string]string, body []byte) string {
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	if len(query) > 0 {
		var pairs []string
		for k, vs := range query {
			for _, v := range vs {
				pairs = append(pairs, normalize(k)+"="+normalize(v))
			}
		}
		sort.Strings(pairs)
		b.WriteString(strings.Join(pairs, "&"))
		b.WriteByte('\n')
	}
	b.WriteString(signedHeaders)
	b.WriteByte('\n')
	lines := make([]string, 0, len(headers))
	for _, n := range strings.Split(signedHeaders, ";") {
		lines = append(lines, normalize(n)+":"+normalize(headers[n]))
	}
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteByte('\n')
	if len(body) > 0 {
		b.WriteString(normalize(string(body)))
	}
	return b.String()
}

// normalize percent-encodes every byte except A-Z a-z 0-9 - . _ ~, with uppercase hex.
func normalize(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// hexHMAC is the lowercase hex of HMAC-SHA256(key, msg); the key is the string's bytes.
func hexHMAC(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
