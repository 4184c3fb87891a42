fn main() {
    println!("zonewatch");
}
