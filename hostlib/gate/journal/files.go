package journal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/simtix/simtix/internal/durable"
)

// create puts a new, empty journal (the header only) at path, atomically:
// written to a temporary file in the same directory, synced, linked to
// path, then the directory is synced. Something already at path (another
// Open creating it at the same moment) is left alone and is not an error.
func create(path string) error {
	dir := filepath.Dir(path)
	tmp, tmpPath, err := durable.CreateTemp(dir, durable.TempPrefix(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmpPath)
	_, err = tmp.Write(header())
	if err == nil {
		err = tmp.Sync()
	}
	if errClose := tmp.Close(); err == nil {
		err = errClose
	}
	if err != nil {
		return durable.Bare(err)
	}
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return durable.Bare(err)
	}
	return durable.SyncDir(dir)
}
