namespace SharpTune.Bench;

/// <summary>One figure of a benchmark: SharpTune's value, the peer's value measured in the same run, and their ratio.</summary>
public sealed record Measure(string Benchmark, string Name, string Unit, double Value, string Peer, double? PeerValue, bool HigherIsBetter)
{
    /// <summary>How many times better SharpTune is than the peer (&gt; 1 means faster or better).</summary>
    public double? Ratio => PeerValue is { } peer && peer > 0 && Value > 0
        ? (HigherIsBetter ? Value / peer : peer / Value)
        : null;

    public override string ToString() =>
        $"{Benchmark,-22} {Name,-34} {Format(Value),12} {Unit,-12} {Peer,-26} {(PeerValue is { } p ? Format(p) : "n/a"),12}  ratio {(Ratio is { } r ? $"{r:F2}x" : "n/a")}";

    private static string Format(double value) => Math.Abs(value) >= 100 ? value.ToString("F0") : value.ToString("G4");
}
