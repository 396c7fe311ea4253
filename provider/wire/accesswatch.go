package wire

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchInterval is how often Watch checks the access-keys file when no
// file-system event arrives (the fallback for file systems without
// notifications): a change takes effect within this time at most.
const WatchInterval = time.Second

// fileStamp is what tells that a file was replaced or rewritten.
type fileStamp struct {
	info os.FileInfo // nil: the file could not be read
}

func stampOf(file string) fileStamp {
	fi, err := os.Stat(file)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi}
}

func (s fileStamp) same(o fileStamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == nil && o.info == nil
	}
	return os.SameFile(s.info, o.info) && s.info.Size() == o.info.Size() && s.info.ModTime().Equal(o.info.ModTime())
}

// Watch keeps the set equal to its file until ctx ends: it reloads when a
// file-system event names the file (watched through its directory, since
// writers replace it by rename), when a check every interval finds it
// changed (the fallback), and at once whenever reload receives (SIGHUP).
// Each reload is logged; a missing or malformed file is logged at error
// level and the last good set stays in force. An in-memory set returns at
// once.
func (a *AccessKeys) Watch(ctx context.Context, interval time.Duration, reload <-chan os.Signal, log *slog.Logger) {
	if a.load == nil {
		return
	}
	var events <-chan fsnotify.Event
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("access keys: no file watch; checking every interval", "interval", interval, "err", err)
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(a.path)); err != nil {
			log.Warn("access keys: no file watch; checking every interval", "interval", interval, "err", err)
		} else {
			events = w.Events
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := stampOf(a.path)
	try := func(why string) {
		now := stampOf(a.path)
		if why == "periodic check" && now.same(last) {
			return
		}
		last = now
		a.reloadLogged(why, log)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if filepath.Clean(ev.Name) == filepath.Clean(a.path) {
				try("file event")
			}
		case <-tick.C:
			try("periodic check")
		case <-reload:
			try("signal")
		}
	}
}

// reloadLogged reloads and logs the outcome.
func (a *AccessKeys) reloadLogged(why string, log *slog.Logger) {
	n, err := a.Reload()
	if err != nil {
		log.Error("access keys: reload failed; the last good set stays in force", "file", a.path, "trigger", why, "err", err)
		return
	}
	log.Info("access keys reloaded", "file", a.path, "trigger", why, "keys", n)
}
