package recording

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestReader_Read(t *testing.T) {
	alaw := alawWAV(8001) // odd data: padded
	pcm := pcm16WAV(2, 100)
	mulaw := buildRIFF(-1, fmtChunk(tagMuLaw, 1, 8000, 8), dataChunk(100))
	ext := buildRIFF(-1, chunk{id: "fmt ", body: append(fmtBody(tagExtensible, 2, 8000, 16), make([]byte, 24)...), size: -1}, dataChunk(400))
	withList := buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8), chunk{id: "LIST", body: []byte("INFOabc"), size: -1}, dataChunk(101), chunk{id: "LIST", body: []byte("abc"), size: -1})
	// The final odd chunk without its pad byte, RIFF size odd.
	noPad := withList[:len(withList)-1]
	binary.LittleEndian.PutUint32(noPad[4:8], uint32(len(noPad)-8))
	full := len(alaw)
	setRIFF := func(b []byte, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[4:8], v)
		return b
	}
	setData := func(b []byte, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[40:44], v)
		return b
	}
	unsizedBoth := setData(setRIFF(alaw, 0xFFFFFFFF), 0xFFFFFFFF)
	unsizedBoth = unsizedBoth[:len(unsizedBoth)-1] // no pad byte: the data runs to EOF

	for _, c := range []struct {
		name     string
		body     []byte
		declared int64 // -2: len(body)
		p        Policy
		want     string // "" = accepted; else a substring of the error
		format   Format
	}{
		{name: "A-law 8 kHz mono", body: alaw, declared: -2, format: FormatWAV},
		{name: "A-law undeclared", body: alaw, declared: -1, format: FormatWAV},
		{name: "PCM 16-bit stereo", body: pcm, declared: -2, format: FormatWAV},
		{name: "mu-law", body: mulaw, declared: -2, format: FormatWAV},
		{name: "extensible", body: ext, declared: -2, format: FormatWAV},
		{name: "odd chunks padded", body: withList, declared: -2, format: FormatWAV},
		{name: "missing final pad byte", body: noPad, declared: -2, format: FormatWAV},
		{name: "final pad byte beyond odd RIFF size", body: append(bytes.Clone(noPad), 0), declared: -2, format: FormatWAV},

		{name: "text", body: []byte("Service Unavailable, call 13800138000\n"), declared: -2, want: "not a recording: text", format: ""},
		{name: "JSON", body: []byte(`{"resultCode":"0300012","resultDesc":"no data"}`), declared: -2, want: ": JSON"},
		{name: "JSON array", body: []byte(` [1,2,3]`), declared: -1, want: ": JSON"},
		{name: "HTML", body: []byte("<!DOCTYPE html><html><head><title>Error</title></head></html>"), declared: -2, want: "HTML or XML page"},
		{name: "HTML with BOM", body: []byte("\xef\xbb\xbf\r\n<html>"), declared: -1, want: "HTML or XML page"},
		{name: "gzip", body: gzipped(alaw), declared: -2, want: "gzip data"},
		{name: "empty", body: nil, declared: -1, want: "empty body"},
		{name: "tiny RIFF", body: []byte("RIFF\x04\x00"), declared: -1, want: "too short for a RIFF header"},
		{name: "AVI", body: append([]byte("RIFF\x04\x00\x00\x00AVI "), make([]byte, 40)...), declared: -1, want: "RIFF file but not WAVE"},
		{name: "RF64", body: append([]byte("RF64\xff\xff\xff\xffWAVE"), make([]byte, 40)...), declared: -1, want: "RF64"},
		{name: "binary junk", body: []byte{0, 1, 2, 3, 0xfe, 0xfd, 7, 8, 9, 10, 11, 12, 13}, declared: -1, want: "unknown format"},

		{name: "truncated: RIFF size above received", body: alaw[:full-100], declared: -1, want: "data chunk claims 8001 bytes, but the body ends after 7902"},
		{name: "truncated before data", body: alaw[:30], declared: -1, want: "body ends after 30 bytes, but the RIFF size announces"},
		{name: "truncated, RIFF size rewritten", body: setRIFF(alaw[:full-100], uint32(full-108)), declared: -1, want: `chunk "data" at offset 36 claims 8001 bytes, but the RIFF size leaves 7902`},
		{name: "truncated, declared full", body: alaw[:full-100], declared: int64(full), want: "data chunk claims"},
		{name: "trailing junk", body: append(bytes.Clone(alaw), "<html>"...), declared: -1, want: "bytes after the end of the RIFF chunk"},
		{name: "one byte after an even RIFF size", body: append(bytes.Clone(alaw), 0), declared: -1, want: "bytes after the end of the RIFF chunk"},
		{name: "declared longer", body: alaw, declared: int64(full + 10), want: "declared length"},
		{name: "declared shorter", body: alaw, declared: int64(full - 10), want: "declared length"},
		{name: "declared shorter, text", body: []byte("hello world"), declared: 5, want: "text"},
		{name: "declared longer, allowed format", body: []byte("OggS\x00\x02rest of the page"), declared: 100, p: Policy{Allow: []Format{FormatOGG}}, want: "body ends after 22 of its declared 100 bytes", format: FormatOGG},
		{name: "declared shorter, allowed format", body: []byte("OggS\x00\x02rest of the page"), declared: 10, p: Policy{Allow: []Format{FormatOGG}}, want: "body longer than its declared length 10", format: FormatOGG},

		{name: "unsized RIFF refused", body: setRIFF(alaw, 0xFFFFFFFF), declared: -1, want: "RIFF size is 0xffffffff"},
		{name: "zero RIFF refused", body: setRIFF(alaw, 0), declared: -1, want: "RIFF size is 0x0"},
		{name: "unsized data refused", body: setData(alaw, 0xFFFFFFFF), declared: -1, want: "data size is 0xffffffff"},
		{name: "zero data refused", body: setData(alaw, 0), declared: -1, want: "data size is 0x0"},
		{name: "unsized RIFF and data allowed", body: unsizedBoth, declared: -2, p: Policy{AllowUnsizedWAV: true}, format: FormatWAV},
		{name: "unsized data in sized RIFF allowed", body: setData(alaw, 0), declared: -2, p: Policy{AllowUnsizedWAV: true}, format: FormatWAV},
		{name: "unsized RIFF, sized chunks allowed", body: setRIFF(withList, 0), declared: -1, p: Policy{AllowUnsizedWAV: true}, format: FormatWAV},

		{name: "float format", body: buildRIFF(-1, fmtChunk(3, 1, 8000, 32), dataChunk(40)), declared: -1, want: "fmt format tag 0x0003"},
		{name: "three channels", body: buildRIFF(-1, fmtChunk(tagPCM, 3, 8000, 16), dataChunk(60)), declared: -1, want: "3 channels"},
		{name: "block align", body: buildRIFF(-1, chunk{id: "fmt ", body: func() []byte {
			b := fmtBody(tagPCM, 2, 8000, 16)
			binary.LittleEndian.PutUint16(b[12:], 2)
			return b
		}(), size: -1}, dataChunk(40)), declared: -1, want: "fmt block align 2, want channels × bits/8 = 4"},
		{name: "short fmt", body: buildRIFF(-1, chunk{id: "fmt ", body: make([]byte, 14), size: -1}, dataChunk(4)), declared: -1, want: "fmt chunk of 14 bytes"},
		{name: "data before fmt", body: buildRIFF(-1, dataChunk(10), fmtChunk(tagALaw, 1, 8000, 8)), declared: -1, want: "data chunk before the fmt chunk"},
		{name: "no data", body: buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8)), declared: -1, want: "no data chunk"},
		{name: "no fmt", body: buildRIFF(-1, chunk{id: "LIST", body: []byte("abcd"), size: -1}), declared: -1, want: "no fmt chunk"},
		{name: "two fmt", body: buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8), fmtChunk(tagALaw, 1, 8000, 8), dataChunk(2)), declared: -1, want: "second fmt chunk"},
		{name: "chunk beyond RIFF", body: buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8), chunk{id: "LIST", body: []byte("ab"), size: 1 << 20}, dataChunk(2)), declared: -1, want: `chunk "LIST" at offset 36 claims 1048576 bytes`},
		{name: "stray bytes in RIFF", body: append(bytes.Clone(buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8), dataChunk(2))), 1, 2, 3, 4), declared: -1, want: "bytes after the end"},

		{name: "ZIP refused", body: []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00rest"), declared: -1, want: ErrIsZip.Error(), format: FormatZIP},
		{name: "ZIP allowed", body: []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00rest"), declared: -2, p: Policy{Allow: []Format{FormatZIP}}, format: FormatZIP},
		{name: "MP3 refused", body: []byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb"), declared: -1, want: "mp3 file, not allowed by the policy", format: FormatMP3},
		{name: "MP3 allowed", body: []byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb"), declared: -1, p: Policy{Allow: []Format{FormatMP3}}, format: FormatMP3},
		{name: "MP3 frame allowed", body: []byte{0xff, 0xfb, 0x90, 0x64, 0, 0}, declared: -1, p: Policy{Allow: []Format{FormatMP3}}, format: FormatMP3},
		{name: "FLAC allowed", body: []byte("fLaC\x00\x00\x00\x22"), declared: -1, p: Policy{Allow: []Format{FormatFLAC}}, format: FormatFLAC},
		{name: "bad policy", body: alaw, declared: -1, p: Policy{Allow: []Format{"aac"}}, want: `unknown format "aac"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			declared := c.declared
			if declared == -2 {
				declared = int64(len(c.body))
			}
			for _, step := range []int{1, 7, 32 << 10} {
				r := NewReader(bytes.NewReader(c.body), declared, c.p)
				got, err := readAll(r, step)
				if c.want == "" {
					if err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					if !bytes.Equal(got, c.body) {
						t.Fatalf("step %d: bytes changed: got %d, want %d", step, len(got), len(c.body))
					}
				} else {
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("step %d: err = %v, want %q", step, err, c.want)
					}
					if !strings.Contains(c.want, "unknown format") && !errors.Is(err, ErrNotRecording) && !errors.Is(err, ErrIsZip) {
						t.Errorf("step %d: %v does not match ErrNotRecording", step, err)
					}
					// Sticky.
					if _, err2 := r.Read(make([]byte, 10)); err2 != err {
						t.Errorf("step %d: next Read = %v, want the same error", step, err2)
					}
				}
				if c.format != "" || c.want == "" {
					if f := r.Format(); f != c.format {
						t.Errorf("step %d: Format = %q, want %q", step, f, c.format)
					}
				}
			}
		})
	}
}

func TestReader_ErrorKinds(t *testing.T) {
	t.Run("ZIP is not ErrNotRecording", func(t *testing.T) {
		_, err := io.ReadAll(NewReader(strings.NewReader("PK\x03\x04abcdefgh"), -1, Policy{}))
		if !errors.Is(err, ErrIsZip) || errors.Is(err, ErrNotRecording) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad policy is not ErrNotRecording", func(t *testing.T) {
		_, err := io.ReadAll(NewReader(bytes.NewReader(alawWAV(10)), -1, Policy{Allow: []Format{"aac"}}))
		if err == nil || errors.Is(err, ErrNotRecording) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("*Error", func(t *testing.T) {
		_, err := io.ReadAll(NewReader(strings.NewReader("<html>"), -1, Policy{}))
		var re *Error
		if !errors.As(err, &re) || re.Reason != "HTML or XML page" || re.Head != "<html>" {
			t.Fatalf("err = %#v", err)
		}
		if want := `recording: not a recording: HTML or XML page (first bytes: "<html>")`; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	})
}

func TestReader_UnderlyingErrors(t *testing.T) {
	wav := alawWAV(1000)
	for _, cut := range []int{0, 5, 12, 100} {
		r := NewReader(&failAfter{r: bytes.NewReader(wav[:cut]), err: errBoom}, -1, Policy{})
		_, err := readAll(r, 64)
		if err != errBoom {
			t.Errorf("cut %d: err = %v, want the reader's own error", cut, err)
		}
	}
	// A truncation the transport reports passes through as is.
	r := NewReader(&failAfter{r: bytes.NewReader(wav[:100]), err: io.ErrUnexpectedEOF}, -1, Policy{})
	if _, err := readAll(r, 64); err != io.ErrUnexpectedEOF {
		t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReader_EndlessBody(t *testing.T) {
	wav := alawWAV(1000)
	for _, tail := range []endless{0, 'x'} {
		r := NewReader(io.MultiReader(bytes.NewReader(wav), tail), -1, Policy{})
		got, err := readAll(r, 4096)
		if err == nil || !errors.Is(err, ErrNotRecording) {
			t.Fatalf("err = %v", err)
		}
		if len(got) > len(wav) {
			t.Errorf("handed out %d bytes, the RIFF size allows %d", len(got), len(wav))
		}
	}
	// An allowed format without a declared length is bounded by the caller;
	// with one, the excess fails at once.
	r := NewReader(io.MultiReader(strings.NewReader("OggS"), endless(0)), 1000, Policy{Allow: []Format{FormatOGG}})
	got, err := readAll(r, 4096)
	if !errors.Is(err, ErrNotRecording) || len(got) > 1000 {
		t.Fatalf("got %d bytes, err = %v", len(got), err)
	}
}

func TestReader_FailsEarly(t *testing.T) {
	// An HTML page fails on the first Read, before any byte is handed out.
	r := NewReader(io.MultiReader(strings.NewReader("<html><body>"), endless(' ')), -1, Policy{})
	n, err := r.Read(make([]byte, 1024))
	if n != 0 || !errors.Is(err, ErrNotRecording) {
		t.Fatalf("n = %d, err = %v", n, err)
	}
	if got := r.Format(); got != "" {
		t.Errorf("Format = %q", got)
	}
}

func TestMask(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"call 13800138000 failed", "call xxxxxxxxxxx failed"},
		{"RIFF\x10\x00\x00\x00WAVE", "RIFF....WAVE"},
		{"\x1f\x8b\x08\x00é", "......"},
		{strings.Repeat("a", 100), strings.Repeat("a", 48)},
	} {
		if got := Mask([]byte(c.in)); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestError_NoDigits(t *testing.T) {
	const phone = "13800138000"
	for _, body := range []string{
		"caller " + phone + " not found",
		`{"resultCode":"0300012","resultDesc":"` + phone + `"}`,
		"<html><body>Call " + phone + "</body></html>",
		phone + phone + phone + phone + phone,
		"\x00\x01" + phone,
	} {
		_, err := io.ReadAll(NewReader(strings.NewReader(body), -1, Policy{}))
		if err == nil {
			t.Fatalf("%q accepted", body)
		}
		if strings.ContainsAny(err.Error(), "0123456789") {
			t.Errorf("digits in %q", err.Error())
		}
	}
}

func TestPolicy_Validate(t *testing.T) {
	if err := (Policy{Allow: []Format{FormatWAV, FormatZIP, FormatMP3, FormatOGG, FormatFLAC}}).Validate(); err != nil {
		t.Errorf("known formats: %v", err)
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Errorf("empty: %v", err)
	}
	err := Policy{Allow: []Format{"mp3", "WAV", "m4a"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), `"WAV"`) || !strings.Contains(err.Error(), `"m4a"`) {
		t.Errorf("err = %v", err)
	}
}
