// Package recording tells a call recording from everything else a download
// interface may answer with HTTP 200: an HTML or JSON error page, a gzip body
// nobody decoded, a body cut short or one that never ends
// (reliability.md §3.6, F9).
//
// NewReader validates a body while it streams, keeping no more than a small
// header window in memory: the magic of the first bytes, then for WAV the
// chunk structure, and at EOF the length against the RIFF size and the length
// the server declared. CheckZip validates a spooled ZIP bundle of recordings
// without extracting it.
//
// Every rejection is an *Error matching ErrNotRecording. Its text quotes the
// first bytes of the body with digits masked, so that a phone number in an
// error page never reaches a log in full.
package recording

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrNotRecording: the bytes are not an acceptable recording. errors.Is
// matches it on every *Error.
var ErrNotRecording = errors.New("recording: not a recording")

// ErrIsZip is returned by Reader.Read when the body starts with PK\x03\x04
// and the policy does not allow FormatZIP. It does not match
// ErrNotRecording: the body may be a valid bundle of recordings. A caller
// that expects bundles allows FormatZIP, spools the body and uses CheckZip.
var ErrIsZip = errors.New("recording: body is a ZIP bundle")

// headMax is how many bytes of the body an Error quotes at most.
const headMax = 48

// Error says why a body is not an acceptable recording.
type Error struct {
	Reason string // why, e.g. "HTML or XML page" or "body ends after 1000 of 2044 bytes the RIFF size announces"
	Head   string // the first bytes of the body, masked (see Mask)
}

// Error implements error:
// recording: not a recording: <reason> (first bytes: "<head>").
func (e *Error) Error() string {
	return "recording: not a recording: " + e.Reason + " (first bytes: " + strconv.Quote(e.Head) + ")"
}

// Is makes errors.Is(err, ErrNotRecording) true.
func (e *Error) Is(target error) bool { return target == ErrNotRecording }

// Mask returns at most the first 48 bytes of b as printable ASCII: digits
// become 'x' (phone numbers), other printable ASCII is kept, any other byte
// becomes '.'.
func Mask(b []byte) string {
	out := make([]byte, min(len(b), headMax))
	for i := range out {
		switch c := b[i]; {
		case c >= '0' && c <= '9':
			out[i] = 'x'
		case c >= 0x20 && c <= 0x7e:
			out[i] = c
		default:
			out[i] = '.'
		}
	}
	return string(out)
}

// Format is the kind of file a body holds.
type Format string

// The formats. WAV is always accepted; the others only when a Policy allows
// them.
const (
	FormatWAV  Format = "wav"
	FormatZIP  Format = "zip" // a bundle of recordings, see CheckZip
	FormatMP3  Format = "mp3"
	FormatOGG  Format = "ogg"
	FormatFLAC Format = "flac"
)

var knownFormats = []Format{FormatWAV, FormatZIP, FormatMP3, FormatOGG, FormatFLAC}

// Policy says what is accepted.
type Policy struct {
	// Allow lists the formats accepted besides WAV: the ones the operator
	// allows (FormatMP3, FormatOGG, FormatFLAC), plus FormatZIP where the
	// caller says a bundle is possible. For the other formats only the
	// magic and the declared length are checked.
	Allow []Format
	// AllowUnsizedWAV accepts a RIFF or data size of 0 or 0xFFFFFFFF, which
	// streaming writers leave behind; the data then runs to the end of the
	// RIFF chunk or of the body. Refused by default: such a body cannot be
	// told from a truncated one.
	AllowUnsizedWAV bool
}

// Validate reports an unknown format name in Allow.
func (p Policy) Validate() error {
	var errs []error
	for _, f := range p.Allow {
		known := false
		for _, k := range knownFormats {
			known = known || f == k
		}
		if !known {
			errs = append(errs, fmt.Errorf("recording: policy: unknown format %q (want wav, zip, mp3, ogg or flac)", string(f)))
		}
	}
	return errors.Join(errs...)
}

// allows reports whether f is accepted.
func (p Policy) allows(f Format) bool {
	if f == FormatWAV {
		return true
	}
	for _, a := range p.Allow {
		if a == f {
			return true
		}
	}
	return false
}

// without returns p minus format f.
func (p Policy) without(f Format) Policy {
	q := Policy{AllowUnsizedWAV: p.AllowUnsizedWAV}
	for _, a := range p.Allow {
		if a != f {
			q.Allow = append(q.Allow, a)
		}
	}
	return q
}
