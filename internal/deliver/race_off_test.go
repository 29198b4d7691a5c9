//go:build !race

package deliver

// raceEnabled: see race_on_test.go.
const raceEnabled = false
