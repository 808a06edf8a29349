package cecclient

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WAV format tags accepted for upload (cec-api.md A.4: 8-bit, 8000 Hz,
// 64 kbit/s, mono; telephony G.711 is A-law or µ-law).
const (
	WAVFormatPCM   = 1
	WAVFormatALaw  = 6
	WAVFormatMuLaw = 7
)

// wavError is one violation; every one matches ErrInvalidWAV.
type wavError string

func (e wavError) Error() string        { return string(e) }
func (e wavError) Is(target error) bool { return target == ErrInvalidWAV }

func wavErrf(format string, a ...any) error { return wavError(fmt.Sprintf("wav: "+format, a...)) }

// ValidateUploadWAV checks b against what ivr/uploadFile accepts: a RIFF/WAVE
// file whose chunks all lie within the file, a fmt chunk before the data
// chunk, format tag 1 (PCM8), 6 (A-law) or 7 (µ-law), 1 channel, 8000 Hz,
// 8 bits per sample, byte rate 8000 (64 kbit/s), block align 1, and at most
// maxBytes bytes (DefaultUploadMaxBytes when maxBytes ≤ 0). It returns
// errors.Join of one error per violation, each naming the field, e.g.
// "wav: fmt.sample_rate is 16000, want 8000"; all of them match ErrInvalidWAV.
func ValidateUploadWAV(b []byte, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = DefaultUploadMaxBytes
	}
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, wavErrf(format, a...)) }
	if int64(len(b)) > maxBytes {
		add("size is %d bytes, want at most %d", len(b), maxBytes)
	}
	if len(b) < 12 {
		add("size is %d bytes, too short for a RIFF header", len(b))
		return errors.Join(errs...)
	}
	id, form := string(b[0:4]), string(b[8:12])
	if id != "RIFF" {
		add("riff.id is %q, want \"RIFF\"", printableID(id))
	}
	if form != "WAVE" {
		add("riff.format is %q, want \"WAVE\"", printableID(form))
	}
	if id != "RIFF" || form != "WAVE" {
		return errors.Join(errs...) // not a WAV: walking chunks would say nothing useful
	}
	end := len(b)
	if riff := int64(binary.LittleEndian.Uint32(b[4:8])); riff+8 > int64(len(b)) {
		add("riff.size is %d, but only %d bytes follow it", riff, len(b)-8)
	} else {
		end = int(riff) + 8 // trailing bytes after the RIFF chunk are ignored
	}
	var sawFmt, sawData bool
	for off := 12; off < end; {
		if end-off < 8 {
			add("chunk header at offset %d is truncated (%d bytes left)", off, end-off)
			break
		}
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		if size > int64(end-body) {
			add("chunk %q at offset %d: size %d exceeds the %d bytes left", printableID(id), off, size, end-body)
			break
		}
		switch id {
		case "fmt ":
			if sawFmt {
				add("second fmt chunk at offset %d", off)
				break
			}
			sawFmt = true
			if sawData {
				add("fmt chunk comes after the data chunk")
			}
			errs = append(errs, checkFmt(b[body:body+int(size)])...)
		case "data":
			if sawData {
				add("second data chunk at offset %d", off)
			}
			sawData = true
			if !sawFmt {
				add("data chunk comes before the fmt chunk")
			}
		}
		next := int64(body) + size + size&1 // odd chunks are padded to an even size
		if next > int64(end) {
			next = int64(end) // a missing final pad byte is tolerated
		}
		off = int(next)
	}
	if !sawFmt {
		add("fmt chunk is missing")
	}
	if !sawData {
		add("data chunk is missing")
	}
	return errors.Join(errs...)
}

func checkFmt(f []byte) []error {
	if len(f) < 16 {
		return []error{wavErrf("fmt.size is %d, want at least 16", len(f))}
	}
	var errs []error
	tag := binary.LittleEndian.Uint16(f[0:2])
	channels := binary.LittleEndian.Uint16(f[2:4])
	rate := binary.LittleEndian.Uint32(f[4:8])
	byteRate := binary.LittleEndian.Uint32(f[8:12])
	align := binary.LittleEndian.Uint16(f[12:14])
	bits := binary.LittleEndian.Uint16(f[14:16])
	if tag != WAVFormatPCM && tag != WAVFormatALaw && tag != WAVFormatMuLaw {
		errs = append(errs, wavErrf("fmt.format_tag is %d, want 1 (PCM), 6 (A-law) or 7 (µ-law)", tag))
	}
	if channels != 1 {
		errs = append(errs, wavErrf("fmt.channels is %d, want 1 (mono)", channels))
	}
	if rate != 8000 {
		errs = append(errs, wavErrf("fmt.sample_rate is %d, want 8000", rate))
	}
	if byteRate != 8000 {
		errs = append(errs, wavErrf("fmt.byte_rate is %d, want 8000 (64 kbit/s)", byteRate))
	}
	if align != 1 {
		errs = append(errs, wavErrf("fmt.block_align is %d, want 1", align))
	}
	if bits != 8 {
		errs = append(errs, wavErrf("fmt.bits_per_sample is %d, want 8", bits))
	}
	return errs
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
