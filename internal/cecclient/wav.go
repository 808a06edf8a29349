package cecclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// WAV format tags accepted for upload (cec-api.md A.4: 8-bit, 8000 Hz,
// 64 kbit/s, mono; telephony G.711 is A-law or µ-law).
const (
	WAVFormatPCM   = 1
	WAVFormatALaw  = 6
	WAVFormatMuLaw = 7
)

// UploadWAVRule is what ivr/uploadFile takes, in words, for messages that
// tell the user what to send instead.
const UploadWAVRule = "CC-FS takes 8-bit A-law, µ-law or PCM WAV at 8000 Hz, mono (64 kbit/s)"

// wavError is one violation; every one matches ErrInvalidWAV.
type wavError string

func (e wavError) Error() string        { return string(e) }
func (e wavError) Is(target error) bool { return target == ErrInvalidWAV }

func wavErrf(format string, a ...any) error { return wavError(fmt.Sprintf("wav: "+format, a...)) }

// InvalidWAVError is the error of ValidateUploadWAV and CheckUploadWAV: the
// file is not one ivr/uploadFile takes. It matches ErrInvalidWAV.
type InvalidWAVError struct {
	// Reason is the main reason in a few words: "not a WAV file (no
	// RIFF/WAVE header)", "6291456 bytes, over the upload limit of
	// 5242880", "a damaged WAV file (...)", or the format fields that are
	// wrong, joined with ", " ("16 bits per sample", "44100 Hz", "2
	// channels (stereo)", "format tag 3 (IEEE float)"); several of these
	// are joined with "; ". Derived fields (byte rate, block align) are
	// named only when nothing else is wrong.
	Reason string
	// Problems has one error per violation, each naming the field, e.g.
	// "wav: fmt.sample_rate is 16000, want 8000".
	Problems []error
}

// Error implements error: the problems, one a line.
func (e *InvalidWAVError) Error() string { return errors.Join(e.Problems...).Error() }

// Is makes the error match ErrInvalidWAV.
func (e *InvalidWAVError) Is(target error) bool { return target == ErrInvalidWAV }

// Unwrap returns the problems.
func (e *InvalidWAVError) Unwrap() []error { return e.Problems }

// ValidateUploadWAV checks b against what ivr/uploadFile accepts (see
// CheckUploadWAV), with the limit maxBytes (DefaultUploadMaxBytes when
// maxBytes ≤ 0). It returns nil or an *InvalidWAVError.
func ValidateUploadWAV(b []byte, maxBytes int64) error {
	return CheckUploadWAV(bytes.NewReader(b), int64(len(b)), maxBytes)
}

// fmtNeeded is how much of a fmt chunk the checks read: the
// WAVEFORMAT fields; an extension (cbSize and after) is skipped.
const fmtNeeded = 16

// CheckUploadWAV checks a WAV file of size bytes read from r against what
// ivr/uploadFile accepts, reading only its headers: a RIFF/WAVE file whose
// chunks all lie within the file, a fmt chunk before the data chunk, format
// tag 1 (PCM8), 6 (A-law) or 7 (µ-law), 1 channel, 8000 Hz, 8 bits per
// sample, byte rate 8000 (64 kbit/s), block align 1, and at most maxBytes
// bytes (DefaultUploadMaxBytes when maxBytes ≤ 0). The bodies of the chunks
// other than fmt are skipped: by seeking when r is an io.Seeker, so a file
// of any size costs a few small reads. A violation gives an
// *InvalidWAVError listing every one; a failed read of r (r shorter than
// size included) an error that does not match ErrInvalidWAV.
func CheckUploadWAV(r io.Reader, size, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = DefaultUploadMaxBytes
	}
	w := &wavWalker{r: r}
	w.check(size, maxBytes)
	if w.ioErr != nil {
		return fmt.Errorf("wav: read: %w", w.ioErr)
	}
	if len(w.problems) == 0 {
		return nil
	}
	return &InvalidWAVError{Reason: strings.Join(w.reasons(), "; "), Problems: w.problems}
}

// wavWalker walks the chunks of one file, recording violations by kind so
// that the reason can name the principal ones.
type wavWalker struct {
	r     io.Reader
	pos   int64 // offset of the next byte r yields
	ioErr error

	problems []error
	notWAV   string   // why the file is no WAV at all
	size     string   // over the limit
	damaged  []string // structure: truncated or misplaced chunks
	format   []string // tag, bits, rate, channels
	derived  []string // byte rate, block align
}

// add records a violation: its message, and its reason under kind (none
// when kind is nil: the caller sets the reason itself).
func (w *wavWalker) add(kind *[]string, reason, format string, a ...any) {
	w.problems = append(w.problems, wavErrf(format, a...))
	if kind != nil {
		*kind = append(*kind, reason)
	}
}

func (w *wavWalker) reasons() []string {
	var out []string
	if w.notWAV != "" {
		out = append(out, w.notWAV)
	}
	if w.size != "" {
		out = append(out, w.size)
	}
	if len(w.damaged) > 0 {
		out = append(out, "a damaged WAV file ("+w.damaged[0]+")")
	}
	if len(w.format) > 0 {
		out = append(out, strings.Join(w.format, ", "))
	}
	if len(out) == 0 && len(w.derived) > 0 {
		out = append(out, strings.Join(w.derived, ", "))
	}
	return out
}

// read fills p from r at offset off (off ≥ pos).
func (w *wavWalker) read(off int64, p []byte) bool {
	if !w.skip(off - w.pos) {
		return false
	}
	n, err := io.ReadFull(w.r, p)
	w.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // size promised more
		}
		w.ioErr = err
		return false
	}
	return true
}

// skip advances r by n bytes.
func (w *wavWalker) skip(n int64) bool {
	if n <= 0 {
		return true
	}
	if s, ok := w.r.(io.Seeker); ok {
		if _, err := s.Seek(n, io.SeekCurrent); err != nil {
			w.ioErr = err
			return false
		}
		w.pos += n
		return true
	}
	m, err := io.CopyN(io.Discard, w.r, n)
	w.pos += m
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		w.ioErr = err
		return false
	}
	return true
}

func (w *wavWalker) check(size, maxBytes int64) {
	if size > maxBytes {
		w.add(nil, "", "size is %d bytes, want at most %d", size, maxBytes)
		w.size = fmt.Sprintf("%d bytes, over the upload limit of %d", size, maxBytes)
	}
	if size < 12 {
		w.add(nil, "", "size is %d bytes, too short for a RIFF header", size)
		w.notWAV = fmt.Sprintf("not a WAV file (%d bytes, too short for a RIFF header)", size)
		return
	}
	var h [12]byte
	if !w.read(0, h[:]) {
		return
	}
	id, form := string(h[0:4]), string(h[8:12])
	if id != "RIFF" {
		w.add(nil, "", "riff.id is %q, want \"RIFF\"", printableID(id))
	}
	if form != "WAVE" {
		w.add(nil, "", "riff.format is %q, want \"WAVE\"", printableID(form))
	}
	if id != "RIFF" || form != "WAVE" {
		w.notWAV = "not a WAV file (no RIFF/WAVE header)"
		return // walking chunks would say nothing useful
	}
	end := size
	if riff := int64(binary.LittleEndian.Uint32(h[4:8])); riff+8 > size {
		w.add(&w.damaged, "truncated", "riff.size is %d, but only %d bytes follow it", riff, size-8)
	} else {
		end = riff + 8 // trailing bytes after the RIFF chunk are ignored
	}
	var sawFmt, sawData bool
	for off := int64(12); off < end; {
		if end-off < 8 {
			w.add(&w.damaged, "truncated chunk header", "chunk header at offset %d is truncated (%d bytes left)", off, end-off)
			break
		}
		var ch [8]byte
		if !w.read(off, ch[:]) {
			return
		}
		id := string(ch[0:4])
		csize := int64(binary.LittleEndian.Uint32(ch[4:8]))
		body := off + 8
		if csize > end-body {
			w.add(&w.damaged, "chunk "+printableID(id)+" runs past the end", "chunk %q at offset %d: size %d exceeds the %d bytes left", printableID(id), off, csize, end-body)
			break
		}
		switch id {
		case "fmt ":
			if sawFmt {
				w.add(&w.damaged, "two fmt chunks", "second fmt chunk at offset %d", off)
				break
			}
			sawFmt = true
			if sawData {
				w.add(&w.damaged, "fmt after data", "fmt chunk comes after the data chunk")
			}
			if csize < fmtNeeded {
				w.add(&w.damaged, "short fmt chunk", "fmt.size is %d, want at least %d", csize, fmtNeeded)
				break
			}
			var f [fmtNeeded]byte
			if !w.read(body, f[:]) {
				return
			}
			w.checkFmt(f[:])
		case "data":
			if sawData {
				w.add(&w.damaged, "two data chunks", "second data chunk at offset %d", off)
			}
			sawData = true
			if !sawFmt {
				w.add(&w.damaged, "data before fmt", "data chunk comes before the fmt chunk")
			}
		}
		next := body + csize + csize&1 // odd chunks are padded to an even size
		if next > end {
			next = end // a missing final pad byte is tolerated
		}
		off = next
	}
	if !sawFmt {
		w.add(&w.damaged, "no fmt chunk", "fmt chunk is missing")
	}
	if !sawData {
		w.add(&w.damaged, "no data chunk", "data chunk is missing")
	}
}

func (w *wavWalker) checkFmt(f []byte) {
	tag := binary.LittleEndian.Uint16(f[0:2])
	channels := binary.LittleEndian.Uint16(f[2:4])
	rate := binary.LittleEndian.Uint32(f[4:8])
	byteRate := binary.LittleEndian.Uint32(f[8:12])
	align := binary.LittleEndian.Uint16(f[12:14])
	bits := binary.LittleEndian.Uint16(f[14:16])
	if tag != WAVFormatPCM && tag != WAVFormatALaw && tag != WAVFormatMuLaw {
		w.add(&w.format, fmt.Sprintf("format tag %d (%s)", tag, formatTagName(tag)),
			"fmt.format_tag is %d, want 1 (PCM), 6 (A-law) or 7 (µ-law)", tag)
	}
	if bits != 8 {
		w.add(&w.format, fmt.Sprintf("%d bits per sample", bits), "fmt.bits_per_sample is %d, want 8", bits)
	}
	if rate != 8000 {
		w.add(&w.format, fmt.Sprintf("%d Hz", rate), "fmt.sample_rate is %d, want 8000", rate)
	}
	if channels != 1 {
		w.add(&w.format, channelsName(channels), "fmt.channels is %d, want 1 (mono)", channels)
	}
	if byteRate != 8000 {
		w.add(&w.derived, fmt.Sprintf("byte rate %d (%g kbit/s)", byteRate, float64(byteRate)*8/1000),
			"fmt.byte_rate is %d, want 8000 (64 kbit/s)", byteRate)
	}
	if align != 1 {
		w.add(&w.derived, fmt.Sprintf("block align %d", align), "fmt.block_align is %d, want 1", align)
	}
}

func formatTagName(tag uint16) string {
	switch tag {
	case 2:
		return "ADPCM"
	case 3:
		return "IEEE float"
	case 0x11:
		return "IMA ADPCM"
	case 0x31:
		return "GSM 6.10"
	case 0x55:
		return "MP3"
	case 0xfffe:
		return "WAVE_FORMAT_EXTENSIBLE"
	}
	return "unknown"
}

func channelsName(n uint16) string {
	switch n {
	case 0:
		return "0 channels"
	case 2:
		return "2 channels (stereo)"
	}
	return fmt.Sprintf("%d channels", n)
}

func printableID(id string) string {
	out := []byte(id)
	for i, c := range out {
		if c < 0x20 || c > 0x7e {
			out[i] = '?'
		}
	}
	return string(out)
}
