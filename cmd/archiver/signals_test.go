package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestShutdown_Signals(t *testing.T) {
	t.Run("no signal", func(t *testing.T) {
		sh := watchSignals(make(chan os.Signal), time.Hour, zap.NewNop(), nil)
		if sh.Stop.Err() != nil || sh.Abort.Err() != nil || sh.Signalled() {
			t.Fatal("contexts cancelled without a signal")
		}
		sh.close()
		if sh.Result() != shutdownClean {
			t.Errorf("result %q, want clean", sh.Result())
		}
		if sh.Stop.Err() == nil || sh.Abort.Err() == nil {
			t.Error("close left the contexts running")
		}
	})
	t.Run("first signal stops new work only", func(t *testing.T) {
		sigs := make(chan os.Signal)
		sh := watchSignals(sigs, time.Hour, zap.NewNop(), nil)
		defer sh.close()
		sigs <- syscall.SIGTERM
		<-sh.Stop.Done()
		if sh.Abort.Err() != nil {
			t.Error("the first signal cancelled in-flight work; the budget is an hour")
		}
		select {
		case <-sh.Forced:
			t.Error("forced after one signal")
		default:
		}
		if !sh.Signalled() || sh.Result() != shutdownClean {
			t.Errorf("signalled %v, result %q", sh.Signalled(), sh.Result())
		}
	})
	t.Run("budget over aborts", func(t *testing.T) {
		sigs := make(chan os.Signal)
		sh := watchSignals(sigs, time.Millisecond, zap.NewNop(), nil)
		defer sh.close()
		sigs <- os.Interrupt
		<-sh.Abort.Done()
		if sh.Stop.Err() == nil {
			t.Error("aborted without stopping")
		}
		if sh.Result() != shutdownAbandoned {
			t.Errorf("result %q, want abandoned", sh.Result())
		}
		select {
		case <-sh.Forced:
			t.Error("a timeout is not forced")
		default:
		}
	})
	t.Run("second signal aborts at once", func(t *testing.T) {
		sigs := make(chan os.Signal)
		sh := watchSignals(sigs, time.Hour, zap.NewNop(), nil)
		defer sh.close()
		sigs <- syscall.SIGTERM
		<-sh.Stop.Done()
		sigs <- syscall.SIGTERM
		<-sh.Forced
		if sh.Abort.Err() == nil {
			t.Error("forced without aborting")
		}
		if sh.Result() != shutdownForced {
			t.Errorf("result %q, want forced", sh.Result())
		}
	})
}

func TestAwait(t *testing.T) {
	t.Run("result", func(t *testing.T) {
		sh := watchSignals(make(chan os.Signal), time.Hour, zap.NewNop(), nil)
		defer sh.close()
		res := make(chan int, 1)
		res <- 7
		if v, ok := await(sh, time.Hour, res); !ok || v != 7 {
			t.Errorf("await = %d, %v", v, ok)
		}
	})
	t.Run("forced, work never returns", func(t *testing.T) {
		sigs := make(chan os.Signal, 2)
		sh := watchSignals(sigs, time.Hour, zap.NewNop(), nil)
		defer sh.close()
		sigs <- os.Interrupt
		sigs <- os.Interrupt
		if _, ok := await(sh, time.Millisecond, make(chan int)); ok {
			t.Error("await returned a result that never came")
		}
	})
	t.Run("forced, work releases in time", func(t *testing.T) {
		sigs := make(chan os.Signal, 2)
		sh := watchSignals(sigs, time.Hour, zap.NewNop(), nil)
		defer sh.close()
		res := make(chan int, 1)
		go func() {
			<-sh.Abort.Done() // the work sees the abort and returns
			res <- 1
		}()
		sigs <- os.Interrupt
		sigs <- os.Interrupt
		if v, ok := await(sh, time.Hour, res); !ok || v != 1 {
			t.Errorf("await = %d, %v; want the released work's result", v, ok)
		}
	})
}
