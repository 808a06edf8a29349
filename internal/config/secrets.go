package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxSecretFileSize bounds what a *_file key may point at, so that a path to a
// device or a large file is an error instead of a huge allocation.
const maxSecretFileSize = 64 << 10

// secretKey pairs a secret key with its *_file twin.
type secretKey struct {
	path   string  // TOML path of the secret, e.g. "cec.sk"
	secret *Secret // the value
	file   *string // the *_file path
}

// secretKeys lists every secret of cfg with its *_file twin. A test checks that
// it covers every Secret field.
func secretKeys(cfg *Config) []secretKey {
	return []secretKey{
		{"cec.sk", &cfg.CEC.SK, &cfg.CEC.SKFile},
		{"cec.api_password", &cfg.CEC.APIPassword, &cfg.CEC.APIPasswordFile},
		{"sink.s3.secret_key", &cfg.Sink.S3.SecretKey, &cfg.Sink.S3.SecretKeyFile},
		{"sink.s3.phone_hmac_key", &cfg.Sink.S3.PhoneHMACKey, &cfg.Sink.S3.PhoneHMACKeyFile},
		{"checkpoint.dsn", &cfg.Checkpoint.DSN, &cfg.Checkpoint.DSNFile},
	}
}

// resolveSecrets reads every *_file key into its secret. Setting both a secret
// and its file (in the TOML file or the environment, in any combination) is an
// error. The *_file path is kept, so a consumer can re-read it with
// ReadSecretFile when the credential is rotated.
func resolveSecrets(cfg *Config) []error {
	var errs []error
	for _, k := range secretKeys(cfg) {
		if *k.file == "" {
			continue
		}
		fileKey := k.path + "_file"
		if k.secret.IsSet() {
			errs = append(errs, &FieldError{Field: k.path, Msg: fmt.Sprintf("set together with %s; use one of them", fileKey)})
			continue
		}
		s, err := ReadSecretFile(*k.file)
		if err != nil {
			errs = append(errs, &FieldError{Field: fileKey, Msg: err.Error()})
			continue
		}
		*k.secret = s
	}
	return errs
}

// ReadSecretFile reads a secret from the file at path: its whole content with
// trailing CR and LF characters trimmed. The error names the path but never
// includes the content. An empty secret is an error.
func ReadSecretFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, describeFileError(path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return Secret{}, describeFileError(path, err)
	}
	if len(b) > maxSecretFileSize {
		return Secret{}, fmt.Errorf("%s: larger than %d bytes", path, maxSecretFileSize)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return Secret{}, fmt.Errorf("%s: file is empty", path)
	}
	return NewSecret(v), nil
}

// describeFileError says why path could not be read without repeating the
// path twice, as *fs.PathError would.
func describeFileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot read %s: %w", path, pe.Err)
	}
	return fmt.Errorf("cannot read %s: %w", path, err)
}
