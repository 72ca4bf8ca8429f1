"""Side-by-side measurements of ec2gw (see README, section "Benchmarks")."""
