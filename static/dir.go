package static

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// dirRoot serves a folder on disk. Each open resolves symbolic links with
// filepath.EvalSymlinks and refuses a target outside the folder, then opens
// the resolved name through os.OpenInRoot, which also refuses an escape made
// by a link swapped in between the check and the open.
type dirRoot struct {
	root string // absolute and free of symbolic links
}

// openDirRoot resolves dir to an absolute path without symbolic links and
// checks that it is a folder.
func openDirRoot(dir string) (*dirRoot, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("absolute path: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("resolve symbolic links: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", real)
	}
	return &dirRoot{root: real}, nil
}

// open opens name, a valid fs.FS name, below the root. It fails with an
// error matching errOutside when a symbolic link leads outside the root and
// with one matching fs.ErrNotExist for anything but a regular file or folder
// (so a FIFO cannot block the request).
func (d *dirRoot) open(name string) (fs.File, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(d.root, filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	rel, err := filepath.Rel(d.root, real)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%s resolves to %s: %w", name, real, errOutside)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil, fmt.Errorf("%s is a %v: %w", name, fi.Mode().Type(), fs.ErrNotExist)
	}
	f, err := os.OpenInRoot(d.root, rel)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return f, nil
}

// notFound reports whether err means the requested file does not exist,
// including a file used as a folder ("/index.html/x").
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
