//go:build !race

package test

// faultRace reports whether the tests run with the race detector, which
// makes TestFaultManyLongPolls hold fewer connects by default.
const faultRace = false
