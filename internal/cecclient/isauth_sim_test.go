package cecclient_test

import (
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
)

// TestIsAuth_Sim checks IsAuth on what the simulator really answers to wrong
// credentials, and that a right one is not taken for an auth failure.
func TestIsAuth_Sim(t *testing.T) {
	e := newSimEnv(t, standardSim())
	file := e.recordings(cecsim.KindAgent, simAK)[0].ID
	t.Run("wrong SK", func(t *testing.T) {
		c := e.client(t, func(o *cecclient.Options) { o.SK = "not-the-sk" })
		_, err := c.DownloadRecordFile(testCtx(t), file)
		if !cecclient.IsAuth(err) {
			t.Errorf("DownloadRecordFile with a wrong SK: IsAuth(%v) = false", err)
		}
	})
	t.Run("wrong API password", func(t *testing.T) {
		c := e.client(t, func(o *cecclient.Options) { o.APIPassword = "not-the-password" })
		_, err := c.GetToken(testCtx(t))
		if !cecclient.IsAuth(err) {
			t.Errorf("GetToken with a wrong password: IsAuth(%v) = false", err)
		}
	})
	t.Run("right credentials", func(t *testing.T) {
		c := e.client(t)
		d, err := c.DownloadRecordFile(testCtx(t), file)
		if err != nil {
			t.Fatalf("DownloadRecordFile: %v", err)
		}
		d.Body.Close()
		if _, err := c.GetToken(testCtx(t)); err != nil {
			t.Fatalf("GetToken: %v", err)
		}
	})
}
