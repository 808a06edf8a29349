package cecsim

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// wavHeaderSize is the canonical RIFF/WAVE header: RIFF, a 16-byte fmt chunk and the data chunk header.
const wavHeaderSize = 44

// WAV format tags accepted by ivr/uploadFile: PCM, A-law, µ-law.
const (
	wavFormatPCM  = 1
	wavFormatALaw = 6
	wavFormatULaw = 7
)

// wavStream produces a G.711 A-law, 8 kHz, mono WAV file of an exact size as a
// stream: a sequence of tones, pauses and noise drawn from a PRNG, so any size
// costs the same (small) memory and the same seed always gives the same bytes.
type wavStream struct {
	size int64
	off  int64
	hdr  [wavHeaderSize]byte
	gen  toneGen
}

// newWAVStream returns a reader of exactly size bytes; size must be even and at
// least wavHeaderSize+2 (normalize and the dataset guarantee it).
func newWAVStream(size int64, seed uint64) *wavStream {
	w := &wavStream{size: size}
	h := w.hdr[:]
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(size-8))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], wavFormatALaw)
	binary.LittleEndian.PutUint16(h[22:], 1)    // channels
	binary.LittleEndian.PutUint32(h[24:], 8000) // sample rate
	binary.LittleEndian.PutUint32(h[28:], 8000) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 1)    // block align
	binary.LittleEndian.PutUint16(h[34:], 8)    // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(size-wavHeaderSize))
	w.gen.init(seed)
	return w
}

// Read implements io.Reader.
func (w *wavStream) Read(p []byte) (int, error) {
	if w.off >= w.size {
		return 0, io.EOF
	}
	if rest := w.size - w.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n := 0
	if w.off < wavHeaderSize {
		n = copy(p, w.hdr[w.off:])
		w.off += int64(n)
	}
	w.gen.fill(p[n:])
	w.off += int64(len(p) - n)
	return len(p), nil
}

// toneGen synthesises speech-like A-law samples: segments of a tone or of silence,
// each with background noise.
type toneGen struct {
	rng   uint64
	sine  [256]int16
	phase uint32
	step  uint32
	amp   int32
	noise int32
	left  int
}

func (g *toneGen) init(seed uint64) {
	g.rng = seed | 1
	for i := range g.sine {
		g.sine[i] = int16(math.Round(32767 * math.Sin(2*math.Pi*float64(i)/float64(len(g.sine)))))
	}
}

// next is xorshift64*.
func (g *toneGen) next() uint64 {
	g.rng ^= g.rng >> 12
	g.rng ^= g.rng << 25
	g.rng ^= g.rng >> 27
	return g.rng * 2685821657736338717
}

func (g *toneGen) newSegment() {
	r := g.next()
	g.left = 800 + int(r%7200) // 0.1 s to 1 s
	r >>= 16
	if r%4 == 0 {
		g.amp = 0
	} else {
		freq := 200 + (r>>2)%1200 // Hz
		g.step = uint32(freq * (1 << 32) / 8000)
		g.amp = 1000 + int32((r>>14)%11000)
	}
	g.noise = 64 + int32((r>>30)%448)
}

func (g *toneGen) fill(p []byte) {
	for len(p) > 0 {
		if g.left == 0 {
			g.newSegment()
		}
		n := min(len(p), g.left)
		// Locals keep the hot loop in registers.
		phase, step, amp, noise, rng := g.phase, g.step, g.amp, g.noise, g.rng
		span := uint64(2*noise + 1)
		for i := range p[:n] {
			phase += step
			s := int32(g.sine[phase>>24]) * amp >> 15
			rng ^= rng >> 12
			rng ^= rng << 25
			rng ^= rng >> 27
			// Uniform noise in [-noise, noise] by multiply-shift (no division).
			s += int32(((rng*2685821657736338717)>>40)*span>>24) - noise
			p[i] = alawEncode(s)
		}
		g.phase, g.rng = phase, rng
		g.left -= n
		p = p[n:]
	}
}

// alawEncode is ITU-T G.711 A-law of a 16-bit linear sample.
func alawEncode(pcm int32) byte {
	if pcm > math.MaxInt16 {
		pcm = math.MaxInt16
	} else if pcm < math.MinInt16 {
		pcm = math.MinInt16
	}
	v := pcm >> 3
	mask := int32(0xD5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	// v is now 0..4095; the segment is the position of its top bit above bit 4.
	seg := int32(0)
	if v > 0x1F {
		seg = int32(bits.Len32(uint32(v))) - 5
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0x0F
	} else {
		a |= (v >> seg) & 0x0F
	}
	return byte(a ^ mask)
}

// checkUploadWAV enforces A.4: a RIFF/WAVE file, 8-bit, 8000 Hz, mono, 64 kbit/s
// (PCM, A-law or µ-law). The error text names what is wrong.
func checkUploadWAV(b []byte) error {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return fmt.Errorf("not a WAV file (no RIFF/WAVE header)")
	}
	if riff := binary.LittleEndian.Uint32(b[4:]); int64(riff)+8 != int64(len(b)) {
		return fmt.Errorf("RIFF size %d does not match the file size %d", riff, len(b))
	}
	sawFmt, sawData := false, false
	for off := 12; off < len(b); {
		if len(b)-off < 8 {
			return fmt.Errorf("truncated chunk header at offset %d", off)
		}
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if size > int64(len(b)-off) {
			return fmt.Errorf("chunk %q of %d bytes runs past the end of the file", id, size)
		}
		body := b[off : off+int(size)]
		switch id {
		case "fmt ":
			if sawFmt {
				return fmt.Errorf("more than one fmt chunk")
			}
			sawFmt = true
			if err := checkUploadFmt(body); err != nil {
				return err
			}
		case "data":
			if !sawFmt {
				return fmt.Errorf("data chunk before the fmt chunk")
			}
			if sawData {
				return fmt.Errorf("more than one data chunk")
			}
			if size == 0 {
				return fmt.Errorf("empty data chunk")
			}
			sawData = true
		}
		off += int(size) + int(size&1)
		if off > len(b) {
			return fmt.Errorf("chunk %q is missing its pad byte", id)
		}
	}
	switch {
	case !sawFmt:
		return fmt.Errorf("no fmt chunk")
	case !sawData:
		return fmt.Errorf("no data chunk")
	}
	return nil
}

func checkUploadFmt(f []byte) error {
	if len(f) < 16 {
		return fmt.Errorf("fmt chunk of %d bytes, want at least 16", len(f))
	}
	le := binary.LittleEndian
	format, channels, rate := le.Uint16(f[0:]), le.Uint16(f[2:]), le.Uint32(f[4:])
	byteRate, align, bits := le.Uint32(f[8:]), le.Uint16(f[12:]), le.Uint16(f[14:])
	switch {
	case format != wavFormatPCM && format != wavFormatALaw && format != wavFormatULaw:
		return fmt.Errorf("audio format %d, want 1 (PCM), 6 (A-law) or 7 (µ-law)", format)
	case channels != 1:
		return fmt.Errorf("%d channels, want mono", channels)
	case rate != 8000:
		return fmt.Errorf("sample rate %d Hz, want 8000", rate)
	case bits != 8:
		return fmt.Errorf("%d bits per sample, want 8", bits)
	case byteRate != 8000:
		return fmt.Errorf("byte rate %d, want 8000 (64 kbit/s)", byteRate)
	case align != 1:
		return fmt.Errorf("block align %d, want 1", align)
	}
	return nil
}
