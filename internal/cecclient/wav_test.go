package cecclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestValidateUploadWAV(t *testing.T) {
	for _, tag := range []uint16{WAVFormatPCM, WAVFormatALaw, WAVFormatMuLaw} {
		for _, n := range []int{0, 1, 8000} {
			if err := ValidateUploadWAV(makeWAV(tag, n), 0); err != nil {
				t.Errorf("tag %d, %d samples: %v", tag, n, err)
			}
		}
	}

	setFmt := func(off int, v uint32, size int) func([]byte) []byte {
		return func(b []byte) []byte {
			if size == 2 {
				binary.LittleEndian.PutUint16(b[20+off:], uint16(v))
			} else {
				binary.LittleEndian.PutUint32(b[20+off:], v)
			}
			return b
		}
	}
	for _, c := range []struct {
		name string
		mod  func([]byte) []byte
		want []string
	}{
		{"sample rate", setFmt(4, 16000, 4), []string{"wav: fmt.sample_rate is 16000, want 8000"}},
		{"stereo 16 bit", func(b []byte) []byte {
			b = setFmt(2, 2, 2)(b)
			b = setFmt(8, 32000, 4)(b)
			b = setFmt(12, 4, 2)(b)
			return setFmt(14, 16, 2)(b)
		}, []string{"fmt.channels is 2", "fmt.byte_rate is 32000", "fmt.block_align is 4", "fmt.bits_per_sample is 16"}},
		{"float", setFmt(0, 3, 2), []string{"fmt.format_tag is 3"}},
		{"not RIFF", func(b []byte) []byte { copy(b, "RIFX"); return b }, []string{`riff.id is "RIFX"`}},
		{"not WAVE", func(b []byte) []byte { copy(b[8:], "AVI "); return b }, []string{`riff.format is "AVI "`}},
		{"truncated", func(b []byte) []byte { return b[:len(b)-20] }, []string{"riff.size is"}},
		{"data size too big", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[40:], 1<<30)
			return b
		}, []string{`chunk "data" at offset 36: size 1073741824 exceeds`, "data chunk is missing"}},
		{"no fmt", func(b []byte) []byte { copy(b[12:], "junk"); return b }, []string{"data chunk comes before the fmt chunk", "fmt chunk is missing"}},
		{"short fmt", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:], 14)
			return b
		}, []string{"fmt.size is 14, want at least 16"}},
		{"tiny", func(b []byte) []byte { return b[:8] }, []string{"too short for a RIFF header"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateUploadWAV(c.mod(makeWAV(WAVFormatALaw, 100)), 0)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidWAV) || Classify(err) != Permanent {
				t.Errorf("errors.Is(ErrInvalidWAV) = false or class %v", Classify(err))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	t.Run("size limit", func(t *testing.T) {
		err := ValidateUploadWAV(makeWAV(WAVFormatALaw, 2000), 1000)
		if err == nil || !strings.Contains(err.Error(), "wav: size is 2056 bytes, want at most 1000") {
			t.Errorf("err = %v", err)
		}
		if err := ValidateUploadWAV(make([]byte, DefaultUploadMaxBytes+1), 0); err == nil || !strings.Contains(err.Error(), "want at most 5242880") {
			t.Errorf("default limit: %v", err)
		}
	})
	t.Run("one error per violation", func(t *testing.T) {
		b := makeWAV(WAVFormatALaw, 10)
		binary.LittleEndian.PutUint32(b[24:], 44100)
		binary.LittleEndian.PutUint16(b[22:], 2)
		err := ValidateUploadWAV(b, 0)
		if got := len(strings.Split(err.Error(), "\n")); got != 2 {
			t.Errorf("%d lines, want 2: %v", got, err)
		}
	})
}

// onlyReader hides every method but Read (no io.Seeker).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// countingReader is a sparse file of size bytes: head, then zeros. It counts
// the bytes read and supports seeking.
type countingReader struct {
	head []byte
	size int64
	pos  int64
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.pos >= c.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), c.size-c.pos))
	for i := range p[:n] {
		p[i] = 0
		if c.pos+int64(i) < int64(len(c.head)) {
			p[i] = c.head[c.pos+int64(i)]
		}
	}
	c.pos += int64(n)
	c.read += int64(n)
	return n, nil
}

func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent {
		return 0, errors.New("only SeekCurrent")
	}
	c.pos += off
	return c.pos, nil
}

// wavFmt is a canonical 44-byte WAV header and n data bytes with the given
// format fields.
func wavFmt(tag, channels uint16, rate uint32, bits uint16, n int) []byte {
	b := makeWAV(tag, 0)[:44]
	align := channels * bits / 8
	binary.LittleEndian.PutUint16(b[22:], channels)
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], rate*uint32(align))
	binary.LittleEndian.PutUint16(b[32:], align)
	binary.LittleEndian.PutUint16(b[34:], bits)
	binary.LittleEndian.PutUint32(b[40:], uint32(n))
	b = append(b, make([]byte, n)...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

func TestCheckUploadWAV_Reason(t *testing.T) {
	for _, c := range []struct {
		name   string
		b      []byte
		max    int64
		reason string
	}{
		{"16 bit", wavFmt(WAVFormatPCM, 1, 8000, 16, 100), 0, "16 bits per sample"},
		{"44.1 kHz", wavFmt(WAVFormatPCM, 1, 44100, 8, 100), 0, "44100 Hz"},
		{"stereo", wavFmt(WAVFormatALaw, 2, 8000, 8, 100), 0, "2 channels (stereo)"},
		{"CD quality", wavFmt(WAVFormatPCM, 2, 44100, 16, 100), 0, "16 bits per sample, 44100 Hz, 2 channels (stereo)"},
		{"float", wavFmt(3, 1, 8000, 8, 100), 0, "format tag 3 (IEEE float)"},
		{"oversized", wavFmt(WAVFormatALaw, 1, 8000, 8, 1000), 500, "1044 bytes, over the upload limit of 500"},
		{"not a WAV", []byte("ID3\x03\x00\x00\x00\x00\x00\x00 an MP3, say"), 0, "not a WAV file (no RIFF/WAVE header)"},
		{"tiny", []byte("RIFF"), 0, "not a WAV file (4 bytes, too short for a RIFF header)"},
		{"damaged", wavFmt(WAVFormatALaw, 1, 8000, 8, 100)[:40], 0, "a damaged WAV file (truncated)"},
		{"oversized and stereo", wavFmt(WAVFormatALaw, 2, 8000, 8, 1000), 500, "1044 bytes, over the upload limit of 500; 2 channels (stereo)"},
		{"byte rate only", func() []byte {
			b := wavFmt(WAVFormatALaw, 1, 8000, 8, 10)
			binary.LittleEndian.PutUint32(b[28:], 16000)
			return b
		}(), 0, "byte rate 16000 (128 kbit/s)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckUploadWAV(bytes.NewReader(c.b), int64(len(c.b)), c.max)
			var werr *InvalidWAVError
			if !errors.As(err, &werr) || !errors.Is(err, ErrInvalidWAV) {
				t.Fatalf("err = %v, want an *InvalidWAVError", err)
			}
			if werr.Reason != c.reason {
				t.Errorf("reason %q, want %q", werr.Reason, c.reason)
			}
			if len(werr.Problems) == 0 || werr.Error() != errors.Join(werr.Problems...).Error() {
				t.Errorf("problems %v", werr.Problems)
			}
		})
	}
}

func TestCheckUploadWAV_Stream(t *testing.T) {
	t.Run("seeks over the data", func(t *testing.T) {
		// A 1 GiB file: the header says so, the rest is never read.
		const size = 1 << 30
		head := wavFmt(WAVFormatALaw, 1, 8000, 8, 0)
		binary.LittleEndian.PutUint32(head[4:], size-8)
		binary.LittleEndian.PutUint32(head[40:], size-44)
		r := &countingReader{head: head, size: size}
		if err := CheckUploadWAV(r, size, size); err != nil {
			t.Fatal(err)
		}
		if r.read > 64 {
			t.Errorf("read %d bytes of the file, want only its headers", r.read)
		}
		err := CheckUploadWAV(&countingReader{head: head, size: size}, size, 5<<20)
		var werr *InvalidWAVError
		if !errors.As(err, &werr) || werr.Reason != "1073741824 bytes, over the upload limit of 5242880" {
			t.Errorf("oversized: %v", err)
		}
	})
	t.Run("without Seek", func(t *testing.T) {
		b := makeWAV(WAVFormatMuLaw, 3001)
		if err := CheckUploadWAV(onlyReader{bytes.NewReader(b)}, int64(len(b)), 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("shorter than size", func(t *testing.T) {
		b := makeWAV(WAVFormatALaw, 100)
		for _, r := range []io.Reader{bytes.NewReader(b[:30]), onlyReader{bytes.NewReader(b[:30])}} {
			err := CheckUploadWAV(r, int64(len(b)), 0)
			if err == nil || errors.Is(err, ErrInvalidWAV) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%T: err = %v, want a read error, not ErrInvalidWAV", r, err)
			}
		}
	})
}
