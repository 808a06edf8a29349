package cecsim

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
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
// stream: the canonical header, then audio segments of 0.1 s to 1 s (a tone or
// a pause, each with background noise) cut from an audioBank, each segment's
// length, bank entry and starting point drawn from a PRNG seeded with the
// recording's seed. Serving a recording is copying memory, any size costs the
// same (small) memory, and the same bank and seed always give the same bytes.
//
// The low four bits (the mantissa) of the first 16 samples, 2 ms of audio,
// carry the seed, so two recordings of the same size with different seeds
// never have the same bytes, however the draws fall.
type wavStream struct {
	size int64
	off  int64
	hdr  [wavHeaderSize]byte
	bank *audioBank
	seed uint64
	rng  uint64
	seg  []byte // the rest of the current segment
}

// seedSamples is the number of samples that carry the seed, four bits each.
const seedSamples = 16

// newWAVStream returns a reader of exactly size bytes cut from bank; size
// must be even and at least wavHeaderSize+2 (normalize and the dataset
// guarantee it).
func newWAVStream(bank *audioBank, size int64, seed uint64) *wavStream {
	w := &wavStream{size: size, bank: bank, seed: seed, rng: seed | 1}
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
	w.fill(p)
	return len(p), nil
}

// WriteTo implements io.WriterTo, so that io.Copy hands the destination
// large writes of a pooled buffer instead of 32 KiB reads.
func (w *wavStream) WriteTo(dst io.Writer) (int64, error) {
	buf := w.bank.getBuf()
	defer w.bank.putBuf(buf)
	var total int64
	for w.off < w.size {
		p := buf[:min(int64(len(buf)), w.size-w.off)]
		w.fill(p)
		n, err := dst.Write(p)
		total += int64(n)
		if err != nil {
			return total, err
		}
		if n < len(p) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// fill writes the next len(p) bytes of the stream into p; the caller keeps
// them within size.
func (w *wavStream) fill(p []byte) {
	start := w.off
	n := 0
	if w.off < wavHeaderSize {
		n = copy(p, w.hdr[w.off:])
	}
	for q := p[n:]; len(q) > 0; {
		if len(w.seg) == 0 {
			w.seg = w.bank.segment(&w.rng)
		}
		k := copy(q, w.seg)
		w.seg, q = w.seg[k:], q[k:]
	}
	if start < wavHeaderSize+seedSamples {
		end := min(start+int64(len(p)), wavHeaderSize+seedSamples)
		for i := max(start, wavHeaderSize); i < end; i++ {
			d := i - wavHeaderSize
			p[i-start] = p[i-start]&0xF0 | byte(w.seed>>(4*d))&0x0F
		}
	}
	w.off += int64(len(p))
}

// audioBank holds the A-law audio that recordings are cut from: bankEntries
// segments of bankSegment samples, each one tone (or pause) with its noise,
// synthesised once by toneGen from the dataset seed. It is immutable but for
// the pool of copy buffers, and safe for concurrent use.
type audioBank struct {
	data []byte // bankEntries × bankSegment samples
	bufs sync.Pool
}

const (
	bankEntries = 64
	bankSegment = 8000 // 1 s, the longest segment
	minSegment  = 800  // 0.1 s
	// copyBuf is the size of WriteTo's writes.
	copyBuf = 256 << 10
)

// newAudioBank synthesises the bank of seed (about 0.5 MB, a few milliseconds).
func newAudioBank(seed uint64) *audioBank {
	b := &audioBank{data: make([]byte, bankEntries*bankSegment)}
	b.bufs.New = func() any { return new([copyBuf]byte) }
	for k := range bankEntries {
		var g toneGen
		g.init(seed ^ uint64(k)*0x9e3779b97f4a7c15)
		g.newSegment()
		g.left = bankSegment
		g.fill(b.data[k*bankSegment : (k+1)*bankSegment])
	}
	return b
}

// segment draws the next segment of a stream from its PRNG state rng: its
// length (minSegment to bankSegment samples), its bank entry and where in the
// entry it starts.
func (b *audioBank) segment(rng *uint64) []byte {
	*rng ^= *rng >> 12
	*rng ^= *rng << 25
	*rng ^= *rng >> 27
	r := *rng * 2685821657736338717
	n := minSegment + int(r%(bankSegment-minSegment+1))
	entry := int(r>>16) % bankEntries
	off := entry*bankSegment + int((r>>24)%uint64(bankSegment-n+1))
	return b.data[off : off+n : off+n]
}

func (b *audioBank) getBuf() []byte { return b.bufs.Get().(*[copyBuf]byte)[:] }

func (b *audioBank) putBuf(p []byte) { b.bufs.Put((*[copyBuf]byte)(p)) }

// toneGen synthesises speech-like A-law samples: segments of a tone or of silence,
// each with background noise. It is slow (a few ns a sample), so it only
// fills the audioBank.
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
