namespace SharpTune.Cli;

public static class Program
{
    public static int Main(string[] args) => SharpTuneCli.Run(args);
}
