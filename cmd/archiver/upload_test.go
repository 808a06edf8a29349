package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// testWAV is a canonical WAV of n data bytes with the given fmt fields
// (byte rate and block align follow from them).
func testWAV(tag, channels uint16, rate uint32, bits uint16, n int) []byte {
	le := binary.LittleEndian
	align := channels * bits / 8
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, tag)
	b = le.AppendUint16(b, channels)
	b = le.AppendUint32(b, rate)
	b = le.AppendUint32(b, rate*uint32(align))
	b = le.AppendUint16(b, align)
	b = le.AppendUint16(b, bits)
	b = append(b, "data"...)
	b = le.AppendUint32(b, uint32(n))
	for i := range n {
		b = append(b, byte(0xd5^i)) // A-law silence, give or take
	}
	le.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCmdUpload(t *testing.T) {
	e := newTestEnv(t, nil, "")
	// The limit comes from the configuration: 64 KiB here.
	e.env["ARCHIVER_CEC_UPLOAD_MAX_BYTES"] = "64KiB"
	dir := t.TempDir()
	good := testWAV(6, 1, 8000, 8, 16000) // 2 s of A-law
	goodPath := writeFile(t, dir, "greeting.wav", good)
	uploads := func() int { return e.sim.Stats().Requests[cecwire.PathUploadFile] }

	t.Run("accepted and listed by the simulator", func(t *testing.T) {
		code, out, errOut := e.run("upload", "--config", e.config, "--vdn", "39", goodPath)
		if code != exitOK {
			t.Fatalf("upload = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		ups := e.sim.Uploads()
		if len(ups) != 1 {
			t.Fatalf("the simulator has %d uploads, want 1: %+v", len(ups), ups)
		}
		up := ups[0]
		sum := sha256.Sum256(good)
		if up.VDN != "39" || up.AK != testAK || up.Size != int64(len(good)) || up.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("simulator upload %+v", up)
		}
		want := "fileName: " + up.FileName + "\nlocationId: " + strings.Join(up.LocationID, ",") + "\n"
		if out != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
		}
	})

	t.Run("json, flags after the file", func(t *testing.T) {
		code, out, errOut := e.run("upload", goodPath, "--json", "--vdn=61", "--config", e.config)
		if code != exitOK {
			t.Fatalf("upload = %d\nstderr:\n%s", code, errOut)
		}
		var got uploadResult
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		ups := e.sim.Uploads()
		last := ups[len(ups)-1]
		if got.FileName != last.FileName || !slices.Equal(got.LocationID, last.LocationID) || got.VDN != 61 ||
			got.Bytes != int64(len(good)) || got.File != goodPath || last.VDN != "61" {
			t.Errorf("json %+v, simulator %+v", got, last)
		}
	})

	// Each bad file gets its own reason, exit 2, and nothing is sent.
	rule := "; CC-FS takes 8-bit A-law, µ-law or PCM WAV at 8000 Hz, mono (64 kbit/s), at most 65536 bytes (cec.upload_max_bytes)\n"
	for _, c := range []struct {
		name   string
		data   []byte
		reason string
		detail string
	}{
		{"16-bit.wav", testWAV(1, 1, 8000, 16, 1000), "16 bits per sample", "wav: fmt.bits_per_sample is 16, want 8"},
		{"44k.wav", testWAV(1, 1, 44100, 8, 1000), "44100 Hz", "wav: fmt.sample_rate is 44100, want 8000"},
		{"stereo.wav", testWAV(6, 2, 8000, 8, 1000), "2 channels (stereo)", "wav: fmt.channels is 2, want 1 (mono)"},
		{"big.wav", testWAV(6, 1, 8000, 8, 70000), "70044 bytes, over the upload limit of 65536", "wav: size is 70044 bytes, want at most 65536"},
		{"song.mp3", append([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"), make([]byte, 500)...), "not a WAV file (no RIFF/WAVE header)", `wav: riff.id is "ID3?"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, c.name, c.data)
			before, n := uploads(), len(e.sim.Uploads())
			code, out, errOut := e.run("upload", "--config", e.config, "--vdn", "39", path)
			if code != exitConfig {
				t.Errorf("upload = %d, want %d", code, exitConfig)
			}
			if first, _, _ := strings.Cut(errOut, "\n"); first+"\n" != "upload: "+path+": "+c.reason+rule {
				t.Errorf("first line of stderr:\n%s\nwant:\n%s", first, "upload: "+path+": "+c.reason+rule)
			}
			if !strings.Contains(errOut, "\n  "+c.detail) {
				t.Errorf("stderr lacks %q:\n%s", c.detail, errOut)
			}
			if out != "" || uploads() != before || len(e.sim.Uploads()) != n {
				t.Errorf("sent anyway: stdout %q, %d requests", out, uploads()-before)
			}
		})
	}

	t.Run("refused by CC-FS", func(t *testing.T) {
		// VDN 40 is not the developer's: CC-FS answers 0300028.
		code, _, errOut := e.run("upload", "--config", e.config, "--vdn", "40", goodPath)
		if code != exitFailed || !strings.Contains(errOut, "vdnId does not belong to the developer") {
			t.Errorf("upload = %d, want %d\nstderr:\n%s", code, exitFailed, errOut)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"upload", "--config", e.config, goodPath},                     // no --vdn
			{"upload", "--config", e.config, "--vdn", "0", goodPath},       // not positive
			{"upload", "--config", e.config, "--vdn", "39"},                // no file
			{"upload", "--config", e.config, "--vdn", "39", goodPath, "x"}, // two files
			{"upload", "--config", e.config, "--vdn", "39", dir},           // a directory
			{"upload", "--config", e.config, "--vdn", "39", dir + "/nope"}, // missing
			{"upload", "--config", e.config + ".missing", "--vdn", "39", goodPath},
		} {
			if code, _, errOut := e.run(args...); code != exitConfig || errOut == "" {
				t.Errorf("%q = %d, want %d\n%s", args, code, exitConfig, errOut)
			}
		}
		if code, _, _ := e.run("upload", "-h"); code != exitOK {
			t.Errorf("-h = %d", code)
		}
	})
	t.Run("auth", func(t *testing.T) {
		e.env["ARCHIVER_CEC_SK"] = "not-the-secret"
		defer delete(e.env, "ARCHIVER_CEC_SK")
		code, _, errOut := e.run("upload", "--config", e.config, "--vdn", "39", goodPath)
		if code != exitPermission || strings.Contains(errOut, "not-the-secret") || strings.Contains(errOut, testSK) {
			t.Errorf("upload = %d, want %d\n%s", code, exitPermission, errOut)
		}
	})
}
