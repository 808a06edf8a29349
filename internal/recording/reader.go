package recording

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// sniffLen is how many bytes decide the format: "RIFF" size "WAVE".
const sniffLen = 12

// maxEmptyReads bounds reads that return neither bytes nor an error.
const maxEmptyReads = 100

// WAV format tags accepted (reliability.md §3.6).
const (
	tagPCM        = 0x0001
	tagALaw       = 0x0006
	tagMuLaw      = 0x0007
	tagExtensible = 0xFFFE
)

// unsized are the RIFF and data sizes streaming writers leave behind.
func unsized(v uint32) bool { return v == 0 || v == 0xFFFFFFFF }

// Reader validates a recording body while it streams; see NewReader.
type Reader struct {
	r        io.Reader
	declared int64
	p        Policy

	sniffed bool
	format  Format
	magic   [headMax]byte
	pend    []byte // sniffed bytes not yet handed out
	eof     bool   // r reported io.EOF
	n       int64  // bytes received from r
	head    [headMax]byte
	headN   int
	err     error // sticky: the error every later Read returns

	w wavWalk
}

// NewReader wraps a recording body being streamed. declared is the length
// the server announced (Content-Length), -1 if unknown. The Reader never
// buffers more than a small header window.
//
// Read fails with an *Error as soon as the first bytes are neither WAV
// (RIFF....WAVE) nor a format p allows; a ZIP that p does not allow gives
// ErrIsZip. For WAV it walks the chunks while streaming: a fmt chunk before
// the data chunk, format tag 1 (PCM), 6 (A-law), 7 (µ-law) or 0xFFFE
// (extensible), 1 or 2 channels, block_align = channels × bits/8, every
// chunk size within what the RIFF size leaves, no byte after the RIFF chunk
// but one pad byte. At EOF Read fails instead of returning io.EOF when the
// bytes received are not RIFF size + 8 (+1 pad byte when the size is odd),
// when the data chunk claims more than was received, or when declared ≥ 0
// and the bytes received differ from it. A body longer than declared fails
// as soon as the excess arrives.
//
// Errors of the underlying reader are returned unchanged. After the first
// error every Read returns it again.
func NewReader(r io.Reader, declared int64, p Policy) *Reader {
	return &Reader{r: r, declared: declared, p: p}
}

// Format reports the format seen once the header was read ("" before, or
// when the first bytes match no known format). It is also set for a format
// the policy refused.
func (r *Reader) Format() Format { return r.format }

// Read implements io.Reader.
func (r *Reader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if !r.sniffed {
		if err := r.sniff(); err != nil {
			r.err = err
			return 0, err
		}
	}
	if len(r.pend) > 0 {
		n := copy(b, r.pend)
		r.pend = r.pend[n:]
		return n, nil
	}
	if r.eof {
		r.err = r.finish()
		return 0, r.err
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, err := r.r.Read(b)
	if n > 0 {
		if verr := r.feed(b[:n]); verr != nil {
			r.err = verr
			return 0, verr
		}
	}
	switch {
	case err == io.EOF:
		r.eof = true
		r.err = r.finish()
		return n, r.err
	case err != nil:
		r.err = err
	}
	return n, err
}

// fail builds the *Error for reason.
func (r *Reader) fail(format string, a ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, a...), Head: Mask(r.head[:r.headN])}
}

// fill reads from r into buf[have:want] until want bytes, EOF or an error.
func (r *Reader) fill(buf []byte, have, want int) (int, error) {
	for empty := 0; have < want; {
		n, err := r.r.Read(buf[have:want])
		have += n
		if err == io.EOF {
			r.eof = true
			return have, nil
		}
		if err != nil {
			return have, err
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return have, io.ErrNoProgress
			}
		}
	}
	return have, nil
}

// sniff reads the first bytes and decides the format.
func (r *Reader) sniff() error {
	if err := r.p.Validate(); err != nil {
		return err
	}
	n, err := r.fill(r.magic[:], 0, sniffLen)
	if err != nil {
		return err
	}
	m := r.magic[:n]
	r.format = detect(m)
	if r.format == "" || !r.p.allows(r.format) {
		if r.format == FormatZIP {
			r.sniffed = true
			return ErrIsZip
		}
		// Read a little more, for a more telling quote.
		if !r.eof {
			if more, err := r.fill(r.magic[:], n, headMax); err == nil {
				n = more
			}
		}
		r.note(r.magic[:n])
		return r.fail("%s", describe(r.magic[:n], r.format))
	}
	r.sniffed = true
	r.pend = m
	if err := r.feed(m); err != nil {
		return err
	}
	return nil
}

// detect names the format of the first bytes m, "" when none matches.
func detect(m []byte) Format {
	switch {
	case len(m) >= 12 && bytes.Equal(m[0:4], []byte("RIFF")) && bytes.Equal(m[8:12], []byte("WAVE")):
		return FormatWAV
	case bytes.HasPrefix(m, []byte("PK\x03\x04")):
		return FormatZIP
	case bytes.HasPrefix(m, []byte("OggS")):
		return FormatOGG
	case bytes.HasPrefix(m, []byte("fLaC")):
		return FormatFLAC
	case bytes.HasPrefix(m, []byte("ID3")),
		len(m) >= 2 && m[0] == 0xFF && m[1]&0xE0 == 0xE0 && m[1]&0x06 != 0: // MPEG audio frame sync, layer set
		return FormatMP3
	}
	return ""
}

// describe says what the first bytes m are, when they are no acceptable
// recording. It never quotes m (the Error's Head does, masked).
func describe(m []byte, f Format) string {
	if f != "" {
		return fmt.Sprintf("%s file, not allowed by the policy", f)
	}
	start := bytes.TrimLeft(bytes.TrimPrefix(m, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case len(m) == 0:
		return "empty body"
	case len(m) >= 2 && m[0] == 0x1f && m[1] == 0x8b:
		return "gzip data (a compressed body nobody decoded)"
	case bytes.HasPrefix(m, []byte("RIFF")) && len(m) < 12:
		return "body too short for a RIFF header"
	case bytes.HasPrefix(m, []byte("RIFF")):
		return "RIFF file but not WAVE"
	case bytes.HasPrefix(m, []byte("RF64")), bytes.HasPrefix(m, []byte("BW64")):
		return "RF64/BW64 WAV is not supported"
	case bytes.HasPrefix(m, []byte("RIFX")):
		return "big-endian RIFX file is not supported"
	case bytes.HasPrefix(m, []byte("PK\x05\x06")):
		return "empty ZIP archive"
	case len(start) > 0 && start[0] == '<':
		return "HTML or XML page"
	case len(start) > 0 && (start[0] == '{' || start[0] == '['):
		return "JSON"
	case isText(m):
		return "text"
	}
	return "unknown format"
}

func isText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// note counts bytes received and keeps the first ones for errors.
func (r *Reader) note(b []byte) {
	if r.headN < headMax {
		r.headN += copy(r.head[r.headN:], b)
	}
	r.n += int64(len(b))
}

// feed checks the next bytes b of the body.
func (r *Reader) feed(b []byte) error {
	r.note(b)
	if r.declared >= 0 && r.n > r.declared {
		return r.fail("body longer than its declared length %d", r.declared)
	}
	if r.format != FormatWAV {
		return nil
	}
	if reason := r.w.feed(b, &r.p); reason != "" {
		return r.fail("%s", reason)
	}
	if r.n == sniffLen && r.declared >= 0 && r.w.end >= 0 && r.declared != r.w.end && !(r.w.padOK() && r.declared == r.w.end+1) {
		return r.fail("declared length %d disagrees with the RIFF size, which announces %d bytes", r.declared, r.w.end)
	}
	return nil
}

// finish checks the body once r reported EOF; io.EOF means it is fine.
func (r *Reader) finish() error {
	if r.format == FormatWAV {
		if reason := r.w.finish(); reason != "" {
			return r.fail("%s", reason)
		}
	}
	if r.declared >= 0 && r.n != r.declared {
		return r.fail("body ends after %d of its declared %d bytes", r.n, r.declared)
	}
	return io.EOF
}

// wavWalk follows the chunks of a WAV as its bytes stream past.
type wavWalk struct {
	off       int64 // offset of the next byte
	end       int64 // RIFF size + 8; -1 when unsized
	riffOdd   bool  // the RIFF size is odd: one pad byte may follow it
	hdr       [8]byte
	hdrN      int    // bytes of hdr collected; the RIFF header counts as a chunk header
	id        string // current chunk
	bodyLeft  int64  // bytes of the current chunk's body still to come
	pad       bool   // a pad byte follows the current chunk's body
	toEOF     bool   // an unsized data chunk runs to the end of the body
	fmtBuf    [16]byte
	fmtN      int
	sawFmt    bool
	sawData   bool
	dataStart int64 // offset of the data chunk's first byte
	dataEnd   int64 // offset where the data chunk ends; -1 until seen or when it runs to EOF
}

func (w *wavWalk) padOK() bool { return w.riffOdd }

// feed walks b; a non-empty result is the reason the WAV is refused.
func (w *wavWalk) feed(b []byte, p *Policy) string {
	if w.off == 0 {
		// The RIFF header: the reader only calls us once it holds 12 bytes.
		size := binary.LittleEndian.Uint32(b[4:8])
		switch {
		case unsized(size) && !p.AllowUnsizedWAV:
			return fmt.Sprintf("RIFF size is %#x (an unsized streaming WAV, not allowed by the policy)", size)
		case unsized(size):
			w.end = -1
		case size < 4:
			return fmt.Sprintf("RIFF size %d is smaller than the WAVE form type", size)
		default:
			w.end = int64(size) + 8
			w.riffOdd = size%2 == 1
		}
		w.dataEnd = -1
		w.off = sniffLen
		b = b[sniffLen:]
	}
	for len(b) > 0 {
		switch {
		case w.toEOF:
			w.off += int64(len(b))
			return ""
		case w.end >= 0 && w.off >= w.end:
			extra := w.off - w.end + int64(len(b))
			if extra > 1 || !w.riffOdd {
				return fmt.Sprintf("bytes after the end of the RIFF chunk at offset %d", w.end)
			}
			w.off += int64(len(b))
			return ""
		case w.bodyLeft > 0:
			k := min(w.bodyLeft, int64(len(b)))
			if w.id == "fmt " && w.fmtN < len(w.fmtBuf) {
				w.fmtN += copy(w.fmtBuf[w.fmtN:], b[:k])
				if w.fmtN == len(w.fmtBuf) {
					if reason := checkFmt(w.fmtBuf[:]); reason != "" {
						return reason
					}
				}
			}
			w.off += k
			w.bodyLeft -= k
			b = b[k:]
		case w.pad:
			w.pad = false
			w.off++
			b = b[1:]
		default:
			if w.hdrN == 0 && w.end >= 0 && w.end-w.off < 8 {
				return fmt.Sprintf("%d stray bytes at offset %d where a chunk header should start", w.end-w.off, w.off)
			}
			k := copy(w.hdr[w.hdrN:], b)
			w.hdrN += k
			w.off += int64(k)
			b = b[k:]
			if w.hdrN == len(w.hdr) {
				w.hdrN = 0
				if reason := w.chunk(p); reason != "" {
					return reason
				}
			}
		}
	}
	return ""
}

// chunk starts the chunk whose header was just read.
func (w *wavWalk) chunk(p *Policy) string {
	w.id = string(w.hdr[0:4])
	raw := binary.LittleEndian.Uint32(w.hdr[4:8])
	size := int64(raw)
	left := int64(-1)
	if w.end >= 0 {
		left = w.end - w.off
	}
	name := Mask([]byte(w.id))
	switch w.id {
	case "fmt ":
		switch {
		case w.sawFmt:
			return fmt.Sprintf("second fmt chunk at offset %d", w.off-8)
		case w.sawData:
			return "fmt chunk after the data chunk"
		case size < 16:
			return fmt.Sprintf("fmt chunk of %d bytes, want at least 16", size)
		}
		w.sawFmt = true
	case "data":
		switch {
		case w.sawData:
			return fmt.Sprintf("second data chunk at offset %d", w.off-8)
		case !w.sawFmt:
			return "data chunk before the fmt chunk"
		}
		w.sawData = true
		if unsized(raw) {
			if !p.AllowUnsizedWAV {
				return fmt.Sprintf("data size is %#x (an unsized streaming WAV, not allowed by the policy)", raw)
			}
			if left < 0 {
				w.toEOF = true
				w.dataStart = w.off
				return ""
			}
			size = left // runs to the end of the RIFF chunk
		}
		w.dataStart, w.dataEnd = w.off, w.off+size
	}
	if left >= 0 && size > left {
		return fmt.Sprintf("chunk %q at offset %d claims %d bytes, but the RIFF size leaves %d", name, w.off-8, size, left)
	}
	w.bodyLeft = size
	// Odd chunks are padded to an even size; a missing pad byte at the very
	// end of the RIFF chunk is tolerated.
	w.pad = size%2 == 1 && (left < 0 || size < left)
	return ""
}

// checkFmt checks the first 16 bytes of a fmt chunk.
func checkFmt(f []byte) string {
	tag := binary.LittleEndian.Uint16(f[0:2])
	channels := binary.LittleEndian.Uint16(f[2:4])
	rate := binary.LittleEndian.Uint32(f[4:8])
	align := binary.LittleEndian.Uint16(f[12:14])
	bits := binary.LittleEndian.Uint16(f[14:16])
	switch {
	case tag != tagPCM && tag != tagALaw && tag != tagMuLaw && tag != tagExtensible:
		return fmt.Sprintf("fmt format tag %#04x, want PCM (1), A-law (6), µ-law (7) or extensible (0xfffe)", tag)
	case channels < 1 || channels > 2:
		return fmt.Sprintf("fmt has %d channels, want 1 or 2", channels)
	case rate == 0:
		return "fmt sample rate is 0"
	case bits == 0:
		return "fmt bits per sample is 0"
	case int(align) != int(channels)*((int(bits)+7)/8):
		return fmt.Sprintf("fmt block align %d, want channels × bits/8 = %d", align, int(channels)*((int(bits)+7)/8))
	}
	return ""
}

// finish checks the walk at the end of the body.
func (w *wavWalk) finish() string {
	switch {
	case w.sawData && w.dataEnd > w.off:
		return fmt.Sprintf("data chunk claims %d bytes, but the body ends after %d of them", w.dataEnd-w.dataStart, w.off-w.dataStart)
	case w.end >= 0 && w.off < w.end:
		return fmt.Sprintf("body ends after %d bytes, but the RIFF size announces %d", w.off, w.end)
	case w.hdrN > 0:
		return fmt.Sprintf("body ends inside a chunk header at offset %d", w.off-int64(w.hdrN))
	case w.bodyLeft > 0:
		return fmt.Sprintf("body ends %d bytes before the end of chunk %q", w.bodyLeft, Mask([]byte(w.id)))
	case !w.sawFmt:
		return "no fmt chunk"
	case !w.sawData:
		return "no data chunk"
	}
	return ""
}
