package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Byte multiples. Binary units are what admins mean by "50 MB" of mail in
// practice; decimal units are accepted because disks are sold that way.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

type sizeUnit struct {
	suffix string
	mult   Size
}

// parseUnits is ordered so that "MiB" is tried before "B".
func parseUnits() [9]sizeUnit {
	return [...]sizeUnit{
		{"kib", KiB}, {"mib", MiB}, {"gib", GiB}, {"tib", TiB},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"b", 1},
	}
}

var errSizeSyntax = errors.New("use a size like 50MiB, 1GiB, 512KiB, 10MB or a plain number of bytes")

// UnmarshalText implements encoding.TextUnmarshaler: "50MiB", "1GiB",
// "512KiB", "10MB" (decimal) or "1048576" (bytes). Units are matched without
// regard to case; spaces, fractions and negative numbers are refused.
func (s *Size) UnmarshalText(b []byte) error {
	text := string(b)
	num, mult := text, Size(1)
	lower := strings.ToLower(text)
	for _, u := range parseUnits() {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = text[:len(text)-len(u.suffix)], u.mult
			break
		}
	}
	if num == "" || strings.IndexFunc(num, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		if strings.HasPrefix(num, "-") {
			return fmt.Errorf("cannot parse %q: a size cannot be negative", text)
		}
		return fmt.Errorf("cannot parse %q: %w", text, errSizeSyntax)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return fmt.Errorf("cannot parse %q: too large", text)
	}
	*s = Size(n) * mult
	return nil
}

// MarshalText implements encoding.TextMarshaler; the output round-trips
// through UnmarshalText.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String renders the size in the largest unit that divides it exactly, so
// 50 MiB prints as "50MiB" and 10,000,000 as "10MB"; otherwise plain bytes.
func (s Size) String() string {
	if s > 0 {
		for _, u := range [...]sizeUnit{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
			{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
			if s%u.mult == 0 {
				return strconv.FormatInt(int64(s/u.mult), 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

var errDurationSyntax = errors.New(`use a duration like 30s, 5m, 120h or 5d`)

// UnmarshalText implements encoding.TextUnmarshaler: anything
// time.ParseDuration takes, plus a leading whole number of days ("5d",
// "1d12h") because queue ages are naturally counted in days. Negative
// durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	text := string(b)
	if strings.HasPrefix(text, "-") {
		return fmt.Errorf("cannot parse %q: a duration cannot be negative", text)
	}
	var days time.Duration
	rest := text
	if i := strings.IndexByte(text, 'd'); i >= 0 {
		n, err := strconv.ParseInt(text[:i], 10, 64)
		if err != nil || i == 0 || strings.IndexFunc(text[:i], func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return fmt.Errorf("cannot parse %q: %w", text, errDurationSyntax)
		}
		const maxDays = math.MaxInt64 / int64(24*time.Hour)
		if n > maxDays {
			return fmt.Errorf("cannot parse %q: too large", text)
		}
		days, rest = time.Duration(n)*24*time.Hour, text[i+1:]
	}
	var v time.Duration
	if rest != "" || days == 0 {
		var err error
		if v, err = time.ParseDuration(rest); err != nil {
			return fmt.Errorf("cannot parse %q: %w", text, errDurationSyntax)
		}
		if v < 0 || strings.HasPrefix(rest, "+") || strings.HasPrefix(rest, "-") {
			return fmt.Errorf("cannot parse %q: %w", text, errDurationSyntax)
		}
	}
	if v > math.MaxInt64-days {
		return fmt.Errorf("cannot parse %q: too large", text)
	}
	*d = Duration(days + v)
	return nil
}

// MarshalText implements encoding.TextMarshaler; the output round-trips
// through UnmarshalText.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String is time.Duration's form without zero tails: "5m", "120h", "1h30m",
// "1.5s", as an admin would write it.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
