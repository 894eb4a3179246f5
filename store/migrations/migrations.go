// Package migrations reads the versioned SQL schema migrations that
// store/sqlite and store/postgres embed (files NNNN_name.sql, from 0001 up).
// It runs nothing: each store applies them in its own transaction and
// records them in its schema_migrations table.
package migrations

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ErrTooNew means a database whose schema is newer than this code knows:
// it was migrated by a newer simtix and is not opened.
var ErrTooNew = errors.New("database schema is newer than this program")

// Migration is one schema change.
type Migration struct {
	// Version numbers the migrations 1, 2, 3 … in the order they apply.
	Version int
	// Name is the file name without the version and extension.
	Name string
	// SQL is the statements, run in one transaction.
	SQL string
}

// Load reads the migrations in directory dir of fsys, in version order.
// Every .sql file there must be named NNNN_name.sql, and the versions must
// run from 1 without gaps or repeats.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || len(num) != 4 || name == "" {
			return nil, fmt.Errorf("migrations: %s: want a name like 0001_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations: version %d (%s) where %d was expected", m.Version, m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrations: none in %s", dir)
	}
	return ms, nil
}

// Pending returns the migrations to apply to a database at version
// current, or ErrTooNew if current is past the last one.
func Pending(ms []Migration, current int) ([]Migration, error) {
	if current > len(ms) {
		return nil, fmt.Errorf("schema version %d, this program knows up to %d: %w", current, len(ms), ErrTooNew)
	}
	if current < 0 {
		return nil, fmt.Errorf("migrations: invalid schema version %d", current)
	}
	return ms[current:], nil
}
