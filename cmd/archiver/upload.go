package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
)

// uploadResult is what upload prints with --json.
type uploadResult struct {
	File       string   `json:"file"`  // the local file
	Bytes      int64    `json:"bytes"` // its size
	VDN        int      `json:"vdn"`
	FileName   string   `json:"fileName"`   // the name CC-FS stored it under
	LocationID []string `json:"locationId"` // CTI-pool mode; [] otherwise
}

// cmdUpload implements "archiver upload": one voice file for a third-party
// chatbot through CC-FS ivr/uploadFile (cec-api.md A.4).
func (c *cli) cmdUpload(args []string) int {
	fs, path := c.newFlagSet("upload", "upload [--config FILE] --vdn N [--json] FILE.wav",
		"Upload a voice file for a third-party chatbot with CC-FS ivr/uploadFile and print\n"+
			"the fileName and locationId CC-FS answers. The file is checked first, from its\n"+
			"headers, against what the interface takes: a WAV of 8-bit A-law, µ-law or PCM\n"+
			"samples, 8000 Hz, mono (64 kbit/s), at most cec.upload_max_bytes (default\n"+
			"5 MiB, CC-FS's default limit). A file that fails is never sent (exit 2), and\n"+
			"the message says what is wrong with it. CC-FS names every stored copy itself:\n"+
			"an upload repeated, or retried after a lost answer, stores the file again.")
	vdn := fs.Int("vdn", 0, "the `VDN` (vdnId) the file is for (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	files, code, ok := c.parseInterspersed(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(files) != 1:
		fmt.Fprintln(c.stderr, "upload: one FILE.wav is required")
		fs.Usage()
		return exitConfig
	case *vdn <= 0:
		fmt.Fprintln(c.stderr, "upload: --vdn: the VDN (a positive integer) is required")
		return exitConfig
	}
	file := files[0]
	cfg, log, ok := c.setup("upload", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("cmd", "upload"))
	limit := int64(cfg.CEC.UploadMaxBytes)

	data, code, ok := c.readUploadFile(file, limit)
	if !ok {
		return code
	}
	client, err := cecclient.New(clientOptions(cfg, log))
	if err != nil {
		for _, e := range flatten(err) {
			fmt.Fprintf(c.stderr, "upload: %v\n", e)
		}
		return exitConfig
	}
	res, err := client.UploadFile(context.Background(), *vdn, data)
	switch {
	case err == nil:
	case errors.Is(err, cecclient.ErrInvalidWAV):
		c.invalidWAV(file, limit, err) // the file changed after it was checked
		return exitConfig
	case cecclient.IsAuth(err):
		fmt.Fprintf(c.stderr, "upload: %s: authentication or permission refused: %v\n", file, err)
		return exitPermission
	default:
		fmt.Fprintf(c.stderr, "upload: %s: %v\n", file, err)
		return exitFailed
	}
	log.Info("file uploaded", zap.String("file", file), zap.Int("vdn", *vdn), zap.Int("bytes", len(data)),
		zap.String("file_name", res.FileName))
	out := uploadResult{File: file, Bytes: int64(len(data)), VDN: *vdn, FileName: res.FileName, LocationID: res.LocationIDs}
	if out.LocationID == nil {
		out.LocationID = []string{}
	}
	if *asJSON {
		if !c.printJSON("upload", out) {
			return exitFailed
		}
		return exitOK
	}
	fmt.Fprintf(c.stdout, "fileName: %s\nlocationId: %s\n", out.FileName, orDash(strings.Join(out.LocationID, ",")))
	return exitOK
}

// readUploadFile checks file from its headers (cecclient.CheckUploadWAV),
// then reads it whole. ok is false when the command must return code:
// exitConfig for a file that cannot be opened or is not one CC-FS takes,
// exitFailed when reading it failed.
func (c *cli) readUploadFile(file string, limit int64) (data []byte, code int, ok bool) {
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(c.stderr, "upload: %v\n", err)
		return nil, exitConfig, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fmt.Fprintf(c.stderr, "upload: %v\n", err)
		return nil, exitFailed, false
	}
	if !st.Mode().IsRegular() {
		fmt.Fprintf(c.stderr, "upload: %s: not a regular file\n", file)
		return nil, exitConfig, false
	}
	if err := cecclient.CheckUploadWAV(f, st.Size(), limit); err != nil {
		if errors.Is(err, cecclient.ErrInvalidWAV) {
			c.invalidWAV(file, limit, err)
			return nil, exitConfig, false
		}
		fmt.Fprintf(c.stderr, "upload: %s: %v\n", file, err)
		return nil, exitFailed, false
	}
	// The file fits the limit: read it whole (it goes base64 in one JSON
	// body). One byte more than its size tells a file that grew.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		fmt.Fprintf(c.stderr, "upload: %s: %v\n", file, err)
		return nil, exitFailed, false
	}
	data, err = io.ReadAll(io.LimitReader(f, st.Size()+1))
	if err != nil {
		fmt.Fprintf(c.stderr, "upload: %s: %v\n", file, err)
		return nil, exitFailed, false
	}
	if int64(len(data)) != st.Size() {
		fmt.Fprintf(c.stderr, "upload: %s: the file changed while it was read (%d bytes, then %d)\n", file, st.Size(), len(data))
		return nil, exitFailed, false
	}
	return data, 0, true
}

// invalidWAV prints why file is not one ivr/uploadFile takes: the main
// reason and the rule on one line, then every violation.
func (c *cli) invalidWAV(file string, limit int64, err error) {
	reason, problems := "not a WAV file CC-FS takes", flatten(err)
	var werr *cecclient.InvalidWAVError
	if errors.As(err, &werr) {
		reason, problems = werr.Reason, werr.Problems
	}
	fmt.Fprintf(c.stderr, "upload: %s: %s; %s, at most %d bytes (cec.upload_max_bytes)\n",
		file, reason, cecclient.UploadWAVRule, limit)
	for _, e := range problems {
		fmt.Fprintf(c.stderr, "  %v\n", e)
	}
}

// parseInterspersed parses args allowing flags after the positional
// arguments ("upload FILE --vdn 39" as well as "upload --vdn 39 FILE"); a
// lone "--" ends the flags. It returns the positional arguments; ok is
// false when the command must return code (help: exitOK; an error:
// exitConfig).
func (c *cli) parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitConfig, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
