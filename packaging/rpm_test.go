package packaging_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestRPM builds the .rpm and reads its header with the minimal reader
// below (rpm is seldom installed on Debian): name, version, architecture,
// requirements, scripts, and every file with its mode, owner, flags and
// digest. When rpm is on PATH it also checks the package's digests and
// queries it.
func TestRPM(t *testing.T) {
	needTools(t, "the .rpm cannot be built here", "bash", "git")
	rpm := buildPackage(t, t.TempDir(), "rpm", testVersion)
	b, err := os.ReadFile(rpm)
	if err != nil {
		t.Fatal(err)
	}
	h, err := readRPMHeader(b)
	if err != nil {
		t.Fatalf("%s: %v", rpm, err)
	}

	t.Run("Tags", func(t *testing.T) {
		version, release := h.str(rpmTagVersion), h.str(rpmTagRelease)
		if got := h.str(rpmTagName); got != pkgName {
			t.Errorf("name %q, want %q", got, pkgName)
		}
		if want := strings.Replace(testVersion, "-", "~", 1); version != want {
			t.Errorf("version %q (release %q), want %q", version, release, want)
		}
		if got, want := h.str(rpmTagArch), map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]; want != "" && got != want {
			t.Errorf("arch %q, want %q", got, want)
		}
		if req := h.strs(rpmTagRequireName); !slices.Contains(req, "shadow-utils") {
			t.Errorf("requires %v, want shadow-utils (useradd in %%pre)", req)
		}
		for name, tag := range map[string]int{
			"preinstall": rpmTagPreIn, "postinstall": rpmTagPostIn,
			"preremove": rpmTagPreUn, "postremove": rpmTagPostUn,
		} {
			if got := h.str(tag); strings.TrimSpace(got) != strings.TrimSpace(string(readScript(t, name))) {
				t.Errorf("%s script differs from packaging/scripts/%s.sh:\n%s", name, name, got)
			}
		}
	})

	t.Run("Files", func(t *testing.T) {
		files, err := h.files()
		if err != nil {
			t.Fatal(err)
		}
		checkFiles(t, files, true)
	})

	t.Run("rpm", func(t *testing.T) {
		if _, err := exec.LookPath("rpm"); err != nil {
			t.Skip("rpm is not installed: the header reader above is the check")
		}
		if out := run(t, "rpm", "--checksig", "--nosignature", rpm); !strings.Contains(out, "digests OK") {
			t.Errorf("rpm --checksig: %s", out)
		}
		out := run(t, "rpm", "-qp", "--configfiles", rpm)
		if strings.TrimSpace(out) != configPath {
			t.Errorf("rpm -qp --configfiles: %q, want %s", out, configPath)
		}
	})
}

// RPM header tags (rpm's lib/rpmtag.h).
const (
	rpmTagName          = 1000
	rpmTagVersion       = 1001
	rpmTagRelease       = 1002
	rpmTagArch          = 1022
	rpmTagPreIn         = 1023
	rpmTagPostIn        = 1024
	rpmTagPreUn         = 1025
	rpmTagPostUn        = 1026
	rpmTagFileModes     = 1030
	rpmTagFileDigests   = 1035
	rpmTagFileFlags     = 1037
	rpmTagFileUserName  = 1039
	rpmTagFileGroupName = 1040
	rpmTagRequireName   = 1049
	rpmTagDirIndexes    = 1116
	rpmTagBaseNames     = 1117
	rpmTagDirNames      = 1118
	rpmTagFileDigestAlg = 5011

	rpmFileConfig    = 1 << 0
	rpmFileNoReplace = 1 << 4
)

// rpmHeader is the main header of a package: tag → raw value.
type rpmHeader map[int]rpmValue

type rpmValue struct {
	typ   uint32 // 3 INT16, 4 INT32, 6 STRING, 8 STRING_ARRAY, 9 I18NSTRING …
	count uint32
	data  []byte // from the value's offset to the end of the store
}

// readRPMHeader skips the lead and the signature header and parses the
// main header's index (the format of rpm's doc/manual/format.md).
func readRPMHeader(b []byte) (rpmHeader, error) {
	if len(b) < 96 || !bytes.Equal(b[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return nil, errors.New("no RPM lead")
	}
	off := 96
	sigLen, err := rpmHeaderLen(b, off)
	if err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	off += (sigLen + 7) &^ 7 // the signature is padded to 8 bytes
	n, err := rpmHeaderLen(b, off)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	nindex := int(binary.BigEndian.Uint32(b[off+8:]))
	index, store := b[off+16:off+16+16*nindex], b[off+16+16*nindex:off+n]
	h := rpmHeader{}
	for i := range nindex {
		e := index[16*i:]
		tag, typ := int(binary.BigEndian.Uint32(e)), binary.BigEndian.Uint32(e[4:])
		at, count := binary.BigEndian.Uint32(e[8:]), binary.BigEndian.Uint32(e[12:])
		if int(at) > len(store) {
			return nil, fmt.Errorf("tag %d: offset %d past the store (%d bytes)", tag, at, len(store))
		}
		h[tag] = rpmValue{typ: typ, count: count, data: store[at:]}
	}
	return h, nil
}

// rpmHeaderLen checks the header structure at off and returns its length.
func rpmHeaderLen(b []byte, off int) (int, error) {
	if len(b) < off+16 || !bytes.Equal(b[off:off+3], []byte{0x8e, 0xad, 0xe8}) {
		return 0, errors.New("no header magic")
	}
	nindex, hsize := int(binary.BigEndian.Uint32(b[off+8:])), int(binary.BigEndian.Uint32(b[off+12:]))
	n := 16 + 16*nindex + hsize
	if nindex > 1<<16 || hsize > 1<<28 || len(b) < off+n {
		return 0, fmt.Errorf("index of %d entries and %d bytes: past the end", nindex, hsize)
	}
	return n, nil
}

// strs returns a string, string array or i18n string value.
func (h rpmHeader) strs(tag int) []string {
	v, ok := h[tag]
	if !ok || (v.typ != 6 && v.typ != 8 && v.typ != 9) {
		return nil
	}
	parts := strings.SplitN(string(v.data), "\x00", int(v.count)+1)
	if len(parts) <= int(v.count) {
		return nil
	}
	return parts[:v.count]
}

func (h rpmHeader) str(tag int) string {
	if s := h.strs(tag); len(s) > 0 {
		return s[0]
	}
	return ""
}

// ints returns an INT16 or INT32 array.
func (h rpmHeader) ints(tag int) []uint32 {
	v, ok := h[tag]
	size := map[uint32]int{3: 2, 4: 4}[v.typ]
	if !ok || size == 0 || len(v.data) < size*int(v.count) {
		return nil
	}
	out := make([]uint32, v.count)
	for i := range out {
		if size == 2 {
			out[i] = uint32(binary.BigEndian.Uint16(v.data[2*i:]))
		} else {
			out[i] = binary.BigEndian.Uint32(v.data[4*i:])
		}
	}
	return out
}

// files returns the file list: path → mode, owner, group, digest (the
// header must use SHA-256, which checkFiles compares) and whether it is
// %config, which must be %config(noreplace).
func (h rpmHeader) files() (map[string]pkgFile, error) {
	base, dirs, dirIdx := h.strs(rpmTagBaseNames), h.strs(rpmTagDirNames), h.ints(rpmTagDirIndexes)
	modes, flags := h.ints(rpmTagFileModes), h.ints(rpmTagFileFlags)
	users, groups, digests := h.strs(rpmTagFileUserName), h.strs(rpmTagFileGroupName), h.strs(rpmTagFileDigests)
	n := len(base)
	for _, l := range []int{len(dirIdx), len(modes), len(flags), len(users), len(groups), len(digests)} {
		if l != n {
			return nil, fmt.Errorf("file tags of different lengths (%d basenames, %d, …)", n, l)
		}
	}
	if alg := h.ints(rpmTagFileDigestAlg); len(alg) != 1 || alg[0] != 8 {
		return nil, fmt.Errorf("file digest algorithm %v, want 8 (SHA-256)", alg)
	}
	files := map[string]pkgFile{}
	for i := range n {
		if int(dirIdx[i]) >= len(dirs) {
			return nil, fmt.Errorf("%s: directory index %d of %d", base[i], dirIdx[i], len(dirs))
		}
		p := strings.TrimSuffix(dirs[dirIdx[i]]+base[i], "/")
		m := fs.FileMode(modes[i] & 0o777)
		switch modes[i] & 0o170000 {
		case 0o040000:
			m |= fs.ModeDir
		case 0o100000:
		default:
			m |= fs.ModeIrregular
		}
		config := flags[i]&rpmFileConfig != 0
		if config && flags[i]&rpmFileNoReplace == 0 {
			return nil, fmt.Errorf("%s: %%config without noreplace: an upgrade would replace an edited copy", p)
		}
		files[p] = pkgFile{Mode: m, Owner: users[i], Group: groups[i], SHA256: digests[i], Config: config}
	}
	return files, nil
}
