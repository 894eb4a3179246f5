package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSyncWatchErrorsOnStderr watches a card whose box cannot be reached:
// in text the failed syncs (retried) go to stderr and nothing to stdout; in
// JSON each is an "event":"error" document, one a line, on stdout.
func TestSyncWatchErrorsOnStderr(t *testing.T) {
	image := newCardImage(t)
	down := "http://127.0.0.1:1"

	watch := background(t, "sync", "--server", down, "--image", image, "--watch", "--interval", "50ms")
	waitFor(t, "the failed sync on stderr", func() bool { return strings.Contains(watch.errOut.String(), "will retry") })
	code, out, errOut := watch.Stop()
	assert.Equal(t, exitOK, code, errOut)
	assert.Empty(t, out, "nothing but errors happened: nothing on stdout")
	assert.Contains(t, errOut, "simtix: ")
	assert.Contains(t, errOut, "sync (start) failed, will retry:")
	assert.Contains(t, errOut, "connection refused")

	watch = background(t, "sync", "--server", down, "--image", image, "--watch", "--interval", "50ms", "--json")
	waitFor(t, "the failed sync on stdout", func() bool { return strings.Contains(watch.Output(), "\n") })
	code, out, errOut = watch.Stop()
	assert.Equal(t, exitOK, code, errOut)
	assert.NotContains(t, errOut, "will retry")
	events := decodeJSONStream[watchJSON](t, out)
	require.NotEmpty(t, events)
	assert.Equal(t, "error", events[0].Event)
	assert.Equal(t, "start", events[0].Why)
	assert.Contains(t, events[0].Error, "connection refused")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		assert.True(t, strings.HasPrefix(line, "{") && strings.HasSuffix(line, "}"), "one JSON document a line: %q", line)
	}
}
