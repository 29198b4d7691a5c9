package led_test

import (
	"fmt"

	"relaybox/internal/led"
	"relaybox/internal/status"
)

// The double blink a technician sees when the relay is failing.
func ExamplePattern() {
	for _, s := range led.Pattern(status.Failing, false) {
		fmt.Println(s.On, s.For)
	}
	// Output:
	// true 150ms
	// false 150ms
	// true 150ms
	// false 1.05s
}

// What the status page says the LED shows while mail waits upstream.
func ExampleDescribe() {
	fmt.Println(led.Describe(status.Degraded, true))
	fmt.Println(led.Describe(status.OK, true))
	// Output:
	// slow blink, 1s on, 1s off (degraded)
	// on with a short wink each second (ok, delivering)
}
