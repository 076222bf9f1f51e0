//! Numbers for people: counts with their thousands grouped, and cents as dollars.

/// A count for people: `10,000`.
///
/// ```
/// assert_eq!(factum_example_bank::grouped(10_002), "10,002");
/// ```
pub fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Dollars and cents for people: `$1,234.56`.
///
/// ```
/// assert_eq!(factum_example_bank::dollars(100_000), "$1,000.00");
/// ```
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}${}.{:02}", grouped(cents / 100), cents % 100)
}

/// [`dollars`] of an unsigned amount, as the aggregate keeps them.
pub(crate) fn dollars_u(cents: u64) -> String {
    dollars(i64::try_from(cents).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Money prints as dollars and cents, thousands grouped.
    #[test]
    fn dollars_group_thousands() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(100_000), "$1,000.00");
        assert_eq!(dollars(123_456_789), "$1,234,567.89");
        assert_eq!(dollars(-250), "-$2.50");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(10_002), "10,002");
    }
}
