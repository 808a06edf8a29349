package recording

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

type zipEntry struct {
	name string
	body []byte
	mode fs.FileMode // 0 = regular file
}

func buildZip(t *testing.T, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckZip(t *testing.T) {
	wav1, wav2 := alawWAV(8000), pcm16WAV(1, 500)
	t.Run("two WAVs", func(t *testing.T) {
		z := buildZip(t, zipEntry{name: "1629533.wav", body: wav1}, zipEntry{name: "1629534.V3", body: wav2})
		ms, err := CheckZip(bytes.NewReader(z), int64(len(z)), Policy{}, 10, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 {
			t.Fatalf("members = %+v", ms)
		}
		for i, want := range [][]byte{wav1, wav2} {
			sum := sha256.Sum256(want)
			if ms[i].Size != int64(len(want)) || ms[i].SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("member %d = %+v", i, ms[i])
			}
		}
		if ms[0].Name != "1629533.wav" {
			t.Errorf("name = %q", ms[0].Name)
		}
	})
	t.Run("allowed format", func(t *testing.T) {
		z := buildZip(t, zipEntry{name: "a.ogg", body: []byte("OggS\x00\x02page")})
		if _, err := CheckZip(bytes.NewReader(z), int64(len(z)), Policy{Allow: []Format{FormatOGG, FormatZIP}}, 10, 1<<20); err != nil {
			t.Fatal(err)
		}
	})

	for _, c := range []struct {
		name       string
		zip        func(t *testing.T) []byte
		p          Policy
		maxEntries int
		maxBytes   int64
		want       string
	}{
		{name: "text entry", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: wav1}, zipEntry{name: "err.txt", body: []byte("error 13800138000")})
		}, want: `zip entry "err.txt": recording: not a recording: text`},
		{name: "path traversal", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "../x.wav", body: wav1})
		}, want: `entry "../x.wav": name is a path`},
		{name: "subdirectory", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "d/x.wav", body: wav1})
		}, want: "name is a path"},
		{name: "absolute", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "/x.wav", body: wav1})
		}, want: "name is a path"},
		{name: "backslash", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: `..\x.wav`, body: wav1})
		}, want: "name is a path"},
		{name: "drive", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "C:x.wav", body: wav1})
		}, want: "colon"},
		{name: "dot dot", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "..", body: wav1})
		}, want: "name is a path"},
		{name: "control character", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a\nb.wav", body: wav1})
		}, want: "control character"},
		{name: "directory", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "d/", body: nil})
		}, want: "name is a path"},
		{name: "directory mode", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "d", mode: fs.ModeDir | 0o755})
		}, want: "not a regular file"},
		{name: "symlink", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "x.wav", body: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777})
		}, want: "not a regular file"},
		{name: "nested archive by name", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "inner.zip", body: buildZip(t, zipEntry{name: "a.wav", body: wav1})})
		}, p: Policy{Allow: []Format{FormatZIP}}, want: "nested archive"},
		{name: "nested ZIP by content", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: buildZip(t, zipEntry{name: "a.wav", body: wav1})})
		}, p: Policy{Allow: []Format{FormatZIP}}, want: "nested ZIP"},
		{name: "gzip entry", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: gzipped(wav1)})
		}, want: "gzip data"},
		{name: "truncated WAV entry", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: wav1[:4000]})
		}, want: "data chunk claims"},
		{name: "duplicate names", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: wav1}, zipEntry{name: "a.wav", body: wav2})
		}, want: "appears twice"},
		{name: "too many entries", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: wav1}, zipEntry{name: "b.wav", body: wav1}, zipEntry{name: "c.wav", body: wav1})
		}, maxEntries: 2, want: "3 entries, more than 2"},
		{name: "inflates beyond maxBytes", zip: func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "a.wav", body: wav1}, zipEntry{name: "b.wav", body: wav1})
		}, maxBytes: int64(len(wav1)) + 100, want: "inflates to more than"},
		{name: "empty", zip: func(t *testing.T) []byte { return buildZip(t) }, want: "no entry"},
		{name: "not a ZIP", zip: func(t *testing.T) []byte { return []byte("<html>not a zip</html>") }, want: "ZIP does not parse"},
		{name: "truncated ZIP", zip: func(t *testing.T) []byte {
			z := buildZip(t, zipEntry{name: "a.wav", body: wav1})
			return z[:len(z)-30]
		}, want: "ZIP does not parse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			z := c.zip(t)
			maxEntries, maxBytes := c.maxEntries, c.maxBytes
			if maxEntries == 0 {
				maxEntries = 10
			}
			if maxBytes == 0 {
				maxBytes = 1 << 20
			}
			ms, err := CheckZip(bytes.NewReader(z), int64(len(z)), c.p, maxEntries, maxBytes)
			if err == nil {
				t.Fatalf("accepted: %+v", ms)
			}
			if !errors.Is(err, ErrNotRecording) {
				t.Errorf("%v does not match ErrNotRecording", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "13800138000") {
				t.Errorf("phone number in %v", err)
			}
		})
	}

	t.Run("spool read error", func(t *testing.T) {
		z := buildZip(t, zipEntry{name: "a.wav", body: wav1})
		_, err := CheckZip(failingReaderAt{}, int64(len(z)), Policy{}, 10, 1<<20)
		if !errors.Is(err, errBoom) || errors.Is(err, ErrNotRecording) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad limits", func(t *testing.T) {
		z := buildZip(t, zipEntry{name: "a.wav", body: wav1})
		if _, err := CheckZip(bytes.NewReader(z), int64(len(z)), Policy{}, 0, 1); err == nil {
			t.Fatal("accepted")
		}
	})
}

type failingReaderAt struct{}

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errBoom }
