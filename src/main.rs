fn main() {
    println!("uhc");
}
