package recording

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// chunk is one RIFF chunk for buildRIFF.
type chunk struct {
	id   string
	body []byte
	size int64 // size to write in the header; -1 = len(body)
}

// buildRIFF builds RIFF/WAVE with the chunks in order, padding odd chunks.
// riffSize < 0 writes the true size.
func buildRIFF(riffSize int64, chunks ...chunk) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVE")
	for _, c := range chunks {
		size := c.size
		if size < 0 {
			size = int64(len(c.body))
		}
		b = append(b, c.id...)
		b = binary.LittleEndian.AppendUint32(b, uint32(size))
		b = append(b, c.body...)
		if len(c.body)%2 == 1 {
			b = append(b, 0)
		}
	}
	if riffSize < 0 {
		riffSize = int64(len(b) - 8)
	}
	binary.LittleEndian.PutUint32(b[4:8], uint32(riffSize))
	return b
}

func fmtBody(tag, channels uint16, rate uint32, bits uint16) []byte {
	align := channels * ((bits + 7) / 8)
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, tag)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, rate*uint32(align))
	b = binary.LittleEndian.AppendUint16(b, align)
	b = binary.LittleEndian.AppendUint16(b, bits)
	return b
}

func samples(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0xd5 ^ i)
	}
	return b
}

func fmtChunk(tag, channels uint16, rate uint32, bits uint16) chunk {
	return chunk{id: "fmt ", body: fmtBody(tag, channels, rate, bits), size: -1}
}

func dataChunk(n int) chunk { return chunk{id: "data", body: samples(n), size: -1} }

// alawWAV is a G.711 A-law recording, 8 kHz mono, of n samples.
func alawWAV(n int) []byte { return buildRIFF(-1, fmtChunk(tagALaw, 1, 8000, 8), dataChunk(n)) }

// pcm16WAV is a 16-bit PCM recording of n frames.
func pcm16WAV(channels uint16, n int) []byte {
	return buildRIFF(-1, fmtChunk(tagPCM, channels, 16000, 16), dataChunk(n*2*int(channels)))
}

// readAll reads r with reads of size step until an error; it returns the
// bytes and the error, nil for io.EOF.
func readAll(r io.Reader, step int) ([]byte, error) {
	var out []byte
	buf := make([]byte, step)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// endless yields v forever.
type endless byte

func (e endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(e)
	}
	return len(b), nil
}

// failAfter returns its data, then err.
type failAfter struct {
	r   *bytes.Reader
	err error
}

func (f *failAfter) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errBoom = errors.New("boom")
