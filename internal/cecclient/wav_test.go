package cecclient

import (
	"encoding/binary"
	"errors"
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
