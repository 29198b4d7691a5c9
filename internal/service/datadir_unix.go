//go:build !windows

package service

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// PrepareDataDir creates the spool's directory with mode 0700 (tightening
// an existing looser one: the spool holds other people's mail) and, when
// owner is set, hands it and everything in it to that user so the service
// can open a spool created earlier by root.
func PrepareDataDir(dir, owner string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("service: create data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("service: data dir permissions: %w", err)
	}
	if owner == "" {
		return nil
	}
	u, err := user.Lookup(owner)
	if err != nil {
		return fmt.Errorf("service: data dir owner: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("service: data dir owner %s: uid %q gid %q are not numbers", owner, u.Uid, u.Gid)
	}
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("service: give data dir to %s: %w", owner, err)
	}
	return nil
}
