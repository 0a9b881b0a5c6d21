pub mod fake_master;
