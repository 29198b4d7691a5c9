//go:build race

package deliver

// raceEnabled: the race detector is on; its sync.Pool drops items on
// purpose, so allocation bounds do not hold.
const raceEnabled = true
