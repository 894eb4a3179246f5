package migrations

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/README":        {Data: []byte("ignored")},
	}
	ms, err := Load(fsys, "m")
	require.NoError(t, err)
	require.Equal(t, []Migration{{1, "init", "A"}, {2, "more", "B"}}, ms)

	p, err := Pending(ms, 1)
	require.NoError(t, err)
	require.Equal(t, ms[1:], p)
	p, err = Pending(ms, 2)
	require.NoError(t, err)
	require.Empty(t, p)
	_, err = Pending(ms, 3)
	require.True(t, errors.Is(err, ErrTooNew), err)
}

func TestLoadRejects(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"repeat":   {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"zero":     {"m/0000_a.sql": {}},
		"unnamed":  {"m/0001.sql": {}},
		"short":    {"m/1_a.sql": {}},
		"empty":    {"m/x.txt": {}},
		"not hex":  {"m/00a1_a.sql": {}},
		"no start": {"m/0002_b.sql": {}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(fsys, "m")
			require.Error(t, err)
		})
	}
	_, err := Load(fstest.MapFS{}, "missing")
	require.Error(t, err)
}
