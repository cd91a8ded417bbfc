"""Counts kept as attempts are recorded (the endpoint rollup), and what is read from them."""
