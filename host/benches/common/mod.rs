pub mod minimal;
