package oauth

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// refreshFile is the refresh token's file. It is read at every refresh,
// so a token written by `relaybox oauth-login` while the daemon runs is
// used at the next attempt, without a restart.
type refreshFile struct {
	path    string
	last    string // the value last read or written
	unsaved string // a rotated token that could not be written: used until it can
}

func (r *refreshFile) current() (string, error) {
	if r.unsaved != "" {
		tok := r.unsaved
		if err := WriteSecretFile(r.path, tok); err == nil {
			r.last, r.unsaved = tok, ""
		}
		return tok, nil
	}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", errNoToken
	}
	if err != nil {
		return "", fmt.Errorf("refresh_token_file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errNoToken
	}
	r.last = v
	return v, nil
}

// rotated saves the refresh token the endpoint returned, when it is a new
// one: the old one may already be void, so losing the new one at a
// restart would take the mailbox offline until someone logs in again.
func (r *refreshFile) rotated(tok string, log *slog.Logger, name string) {
	if tok == "" || tok == r.last || tok == r.unsaved {
		return
	}
	if err := WriteSecretFile(r.path, tok); err != nil {
		r.unsaved = tok
		log.Error("oauth: the token endpoint issued a new refresh token but it cannot be saved; it is kept in memory, and a restart before it is saved needs relaybox oauth-login",
			"upstream", name, "file", r.path, "err", err.Error())
		return
	}
	r.last, r.unsaved = tok, ""
	log.Info("oauth: refresh token rotated by the token endpoint; saved", "upstream", name, "file", r.path)
}

// WriteSecretFile replaces path with value (plus a newline), mode 0600, so
// that a crash leaves either the old file or the new one: write a temporary
// file beside it, fsync, rename over, fsync the directory.
func WriteSecretFile(path, value string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("oauth: write %s: %w", path, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && !isWindows() {
		return fmt.Errorf("oauth: write %s: %w", path, err)
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		return fmt.Errorf("oauth: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("oauth: write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("oauth: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("oauth: write %s: %w", path, err)
	}
	done = true
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable; Windows cannot open a directory for
// that and does not need it.
func syncDir(dir string) {
	if isWindows() {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
