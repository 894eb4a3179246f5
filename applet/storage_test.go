package applet

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFit(t *testing.T) {
	// 2048 / (200 + 8) = 9.8: nine fit.
	sizes := make([]int, 20)
	for i := range sizes {
		sizes[i] = 200
	}
	assert.Equal(t, 9, Fit(sizes, DefaultCapacity, DefaultMaxTickets))
	assert.Equal(t, 3, Fit(sizes, DefaultCapacity, 3), "the count limit")
	assert.Equal(t, 2, Fit([]int{100, 100}, 216, 5), "exactly full")
	assert.Equal(t, 1, Fit([]int{100, 100}, 215, 5), "one byte short")
	assert.Equal(t, 0, Fit(nil, 2048, 32))
	assert.Equal(t, 1, Fit([]int{10, 500, 10}, 300, 32), "stops at the first that does not fit")
}
