"""The expectation types of Great Expectations 1.x, by their snake_case names (as written in model configs).

A static list, so a config is checked at DAG parse time without importing Great Expectations (seconds per
import). ``tests/core/test_config.py`` compares it with the installed Great Expectations, so an upgrade that adds or
removes expectations fails a test instead of silently accepting a typo.
"""

from __future__ import annotations

EXPECTATION_TYPES = frozenset({
    "expect_column_distinct_values_to_be_in_set", "expect_column_distinct_values_to_contain_set",
    "expect_column_distinct_values_to_equal_set", "expect_column_k_l_divergence_to_be_less_than",
    "expect_column_max_to_be_between", "expect_column_mean_to_be_between", "expect_column_median_to_be_between",
    "expect_column_min_to_be_between", "expect_column_most_common_value_to_be_in_set",
    "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_to_be_in_set", "expect_column_proportion_of_non_null_values_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between", "expect_column_quantile_values_to_be_between",
    "expect_column_stdev_to_be_between", "expect_column_sum_to_be_between", "expect_column_to_exist",
    "expect_column_type_to_be", "expect_column_unique_value_count_to_be_between",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_value_z_scores_to_be_less_than", "expect_column_values_to_be_between",
    "expect_column_values_to_be_dateutil_parseable", "expect_column_values_to_be_decreasing",
    "expect_column_values_to_be_in_set", "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_increasing", "expect_column_values_to_be_json_parseable",
    "expect_column_values_to_be_null", "expect_column_values_to_be_of_type", "expect_column_values_to_be_unique",
    "expect_column_values_to_match_json_schema", "expect_column_values_to_match_like_pattern",
    "expect_column_values_to_match_like_pattern_list", "expect_column_values_to_match_regex",
    "expect_column_values_to_match_regex_list", "expect_column_values_to_match_strftime_format",
    "expect_column_values_to_not_be_in_set", "expect_column_values_to_not_be_null",
    "expect_column_values_to_not_be_outliers", "expect_column_values_to_not_match_like_pattern",
    "expect_column_values_to_not_match_like_pattern_list", "expect_column_values_to_not_match_regex",
    "expect_column_values_to_not_match_regex_list", "expect_compound_columns_to_be_unique",
    "expect_multicolumn_sum_to_equal", "expect_multicolumn_values_to_be_equal",
    "expect_multicolumn_values_to_be_unique", "expect_query_results_to_match_comparison",
    "expect_select_column_values_to_be_unique_within_record", "expect_table_column_count_to_be_between",
    "expect_table_column_count_to_equal", "expect_table_columns_to_match_ordered_list",
    "expect_table_columns_to_match_set", "expect_table_row_count_to_be_between", "expect_table_row_count_to_equal",
    "expect_table_row_count_to_equal_other_table",
})
