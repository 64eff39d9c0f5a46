//! Spins forever without calling the host: only fuel, an epoch deadline or a kill can stop it.
fn main() {
    println!("spinning");
    let mut x: u64 = 1;
    loop {
        // `black_box` keeps the optimiser from proving the loop has no effect.
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
