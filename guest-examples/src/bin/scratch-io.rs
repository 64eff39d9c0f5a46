//! Reads stdin, writes it upper-cased to `/scratch/output.txt`, reads that back, and prints it:
//! the read-input/write-output round trip through the attempt's private scratch directory.
//! With an argument DIR it also lists the files in DIR (a granted directory).
use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    std::fs::write("/scratch/output.txt", input.to_uppercase()).expect("write /scratch/output.txt");
    let back = std::fs::read_to_string("/scratch/output.txt").expect("read /scratch/output.txt");
    println!("scratch says: {back}");
    if let Some(dir) = std::env::args().nth(1) {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read_dir {dir}: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            println!("{dir}: {name}");
        }
        let probe = format!("{dir}/written-by-guest.txt");
        match std::fs::write(&probe, "hi") {
            Ok(()) => println!("write {probe}: ok"),
            Err(e) => println!("write {probe}: denied ({e})"),
        }
    }
}
