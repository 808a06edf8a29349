package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// TestLoad_DeployConfigs loads the configurations shipped in deploy/ exactly
// as the daemon would, with the secret files they point at (which only exist
// on a real host) replaced by temp files through the environment.
func TestLoad_DeployConfigs(t *testing.T) {
	for _, path := range []string{"../../deploy/k8s/config.toml", "../../deploy/systemd/config.toml", "../../deploy/k8s-postgres/component/config.toml"} {
		pg := filepath.Base(filepath.Dir(path)) == "component"
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			dir := t.TempDir()
			secret := func(name, value string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			env := map[string]string{
				"ARCHIVER_CEC_SK_FILE":             secret("sk", "deploy-test-sk"),
				"ARCHIVER_CEC_API_PASSWORD_FILE":   secret("pw", "deploy-test-password"),
				"ARCHIVER_SINK_S3_SECRET_KEY_FILE": secret("s3", "deploy-test-s3-secret"),
			}
			if pg {
				env["ARCHIVER_CHECKPOINT_DSN_FILE"] = secret("dsn", "postgres://archiver:deploy-test-pw@db.example.com:5432/archiver?sslmode=verify-full")
			}
			cfg, err := config.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatalf("Load(%s): %v", path, err)
			}
			if cfg.Sink.Type != config.SinkS3 {
				t.Errorf("sink.type = %q, want s3 in a deployment", cfg.Sink.Type)
			}
			switch {
			case pg:
				// deploy/k8s-postgres: the state in PostgreSQL, the DSN a
				// file of the Secret, the rows the tenant's.
				if cfg.Checkpoint.Driver != config.DriverPostgres {
					t.Errorf("checkpoint.driver = %q, want %q", cfg.Checkpoint.Driver, config.DriverPostgres)
				}
				if cfg.Checkpoint.DSN.Reveal() != "postgres://archiver:deploy-test-pw@db.example.com:5432/archiver?sslmode=verify-full" {
					t.Error("checkpoint.dsn was not read from checkpoint.dsn_file")
				}
				if cfg.CEC.TenantID == "" {
					t.Error("cec.tenant_id is empty: the rows of the state are the tenant's")
				}
			case cfg.Checkpoint.Path != "/var/lib/archiver/state.db":
				t.Errorf("checkpoint.path = %q, want the state directory", cfg.Checkpoint.Path)
			}
			if cfg.CEC.CallbackURL == "" || cfg.CEC.CallbackListen == "" {
				t.Errorf("callback_url/callback_listen unset: CC-FS requires a callBackURL")
			}
			for _, w := range cfg.Warnings() {
				t.Logf("warning: %s", w)
			}
		})
	}
}
