package recording

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzReader: NewReader never panics, the verdict does not depend on how the
// body is split into reads, the bytes handed out are the input, and an
// accepted WAV has consistent sizes.
func FuzzReader(f *testing.F) {
	alaw := alawWAV(101)
	for _, seed := range [][]byte{
		alaw, alaw[:60], append(bytes.Clone(alaw), 0, 0), pcm16WAV(2, 10),
		buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8), chunk{id: "LIST", body: []byte("abc"), size: -1}, dataChunk(3)),
		buildRIFF(0xFFFFFFFF, fmtChunk(tagALaw, 1, 8000, 8), chunk{id: "data", body: samples(9), size: 0}),
		[]byte("<html>"), []byte(`{"resultCode":"0"}`), {0x1f, 0x8b, 8}, []byte("PK\x03\x04"), []byte("OggS"), nil,
	} {
		f.Add(seed, uint8(0), uint8(0), false)
		f.Add(seed, uint8(1), uint8(3), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, mode, step uint8, unsizedOK bool) {
		declared := int64(-1)
		switch mode % 4 {
		case 1:
			declared = int64(len(data))
		case 2:
			declared = int64(len(data)) + int64(mode)
		case 3:
			declared = int64(len(data)) / 2
		}
		p := Policy{AllowUnsizedWAV: unsizedOK, Allow: []Format{FormatOGG}}
		r1 := NewReader(bytes.NewReader(data), declared, p)
		got1, err1 := readAll(r1, 1+int(step%64))
		r2 := NewReader(bytes.NewReader(data), declared, p)
		got2, err2 := readAll(r2, 1<<16)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("verdict depends on read size: %v vs %v", err1, err2)
		}
		if err1 != nil {
			if !errors.Is(err1, ErrNotRecording) && !errors.Is(err1, ErrIsZip) {
				t.Fatalf("unexpected error kind: %v", err1)
			}
			return
		}
		if !bytes.Equal(got1, data) || !bytes.Equal(got2, data) {
			t.Fatal("accepted, but the bytes handed out differ from the input")
		}
		if declared >= 0 && int64(len(data)) != declared {
			t.Fatalf("accepted %d bytes, declared %d", len(data), declared)
		}
		if r1.Format() != FormatWAV {
			return
		}
		riff := binary.LittleEndian.Uint32(data[4:8])
		if !unsized(riff) {
			n := int64(riff) + 8
			if int64(len(data)) != n && !(riff%2 == 1 && int64(len(data)) == n+1) {
				t.Fatalf("accepted %d bytes, RIFF size says %d", len(data), n)
			}
		} else if !unsizedOK {
			t.Fatal("accepted an unsized RIFF")
		}
		w := r1.w
		if !w.sawFmt || !w.sawData || w.dataEnd > int64(len(data)) {
			t.Fatalf("accepted with fmt %v, data %v, data end %d of %d", w.sawFmt, w.sawData, w.dataEnd, len(data))
		}
	})
}
